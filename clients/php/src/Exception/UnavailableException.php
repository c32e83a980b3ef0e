<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** The server cannot serve the call now (503 busy or unavailable): storage unreachable, overloaded or shutting down. */
final class UnavailableException extends ApiException
{
}
