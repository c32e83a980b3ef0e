// chat.js: the ES-module face of ChatClient (implementation: chat.umd.js).
//
//   import { ChatClient } from '/chat.js';
//   const chat = new ChatClient({ account: 'alice' });
//   chat.on('message', (m) => console.log(m.from, m.content));
//   chat.connect();
//   chat.send('bob', 'hi');
//
// For a classic <script>, load /chat.umd.js instead: it defines window.ChatClient.
import * as umd from './chat.umd.js';

// A bundler (webpack, Vite's build) sees chat.umd.js as CommonJS and gives its
// module.exports as the default; a browser runs it as a module, where it hands
// the class over under a registered symbol instead of a global name.
const ChatClient = (umd && umd.default) || globalThis[Symbol.for('chatserver.ChatClient')] || globalThis.ChatClient;
const { miniProgramTransport, miniProgramStorage } = ChatClient;

export { ChatClient, miniProgramTransport, miniProgramStorage };
export default ChatClient;
