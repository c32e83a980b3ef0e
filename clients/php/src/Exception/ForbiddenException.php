<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** The call is not allowed (403 forbidden). */
final class ForbiddenException extends ApiException
{
}
