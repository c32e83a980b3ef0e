<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** No complete answer in time after the request was sent: the server may have acted on it. */
class TimeoutException extends TransportException
{
}
