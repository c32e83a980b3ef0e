<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** The connection could not be opened (refused, unresolved, connect timeout): nothing was sent. */
class ConnectException extends TransportException
{
}
