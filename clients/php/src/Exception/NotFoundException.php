<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** No such thing (404 not_found): a group with no members, or an unknown endpoint. */
final class NotFoundException extends ApiException
{
}
