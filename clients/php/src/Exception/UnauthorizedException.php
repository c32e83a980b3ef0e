<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** The secret was missing or wrong (401 unauthorized). */
final class UnauthorizedException extends ApiException
{
}
