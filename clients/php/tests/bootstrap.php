<?php

declare(strict_types=1);

// The suite runs against a live server and a witness that holds WebSocket
// connections; e2e/php_client_test.go starts both and sets:
//   CHAT_API_URL      the side API, e.g. http://127.0.0.1:9053
//   CHAT_API_SECRET   its api.secret
//   CHAT_WITNESS_URL  the witness (/login, /frames, /closed, /fault/..., /seen)
//   CHAT_REFUSED_URL  an address where nothing listens
foreach (['CHAT_API_URL', 'CHAT_API_SECRET', 'CHAT_WITNESS_URL', 'CHAT_REFUSED_URL'] as $name) {
    if (getenv($name) === false || getenv($name) === '') {
        fwrite(STDERR, "$name is not set: run the suite through go test -run TestPHPClient ./e2e\n");
        exit(2);
    }
}

$autoload = __DIR__ . '/../vendor/autoload.php';
if (is_file($autoload)) {
    require $autoload;
} else {
    // Without Composer: the package's PSR-4 map, by hand.
    spl_autoload_register(static function (string $class): void {
        foreach (['ChatServer\\SideApi\\Tests\\' => __DIR__ . '/', 'ChatServer\\SideApi\\' => __DIR__ . '/../src/'] as $prefix => $dir) {
            if (str_starts_with($class, $prefix)) {
                $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require $file;
                }
                return;
            }
        }
    });
}
