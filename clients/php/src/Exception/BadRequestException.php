<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** The call was refused as malformed (400): a missing or bad field, too long a value, too many accounts. */
final class BadRequestException extends ApiException
{
}
