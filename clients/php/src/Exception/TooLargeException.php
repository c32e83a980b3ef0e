<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** Too big: a request body over the server's limit (413), or a group past limits.max_group_size (422); nothing changed. */
final class TooLargeException extends ApiException
{
}
