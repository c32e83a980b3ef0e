<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** The server failed (500 internal, logged on its side). */
final class ServerException extends ApiException
{
}
