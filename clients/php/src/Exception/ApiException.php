<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/**
 * The server answered with an error, {"error":{"code":"...","message":"..."}}.
 * getErrorCode() is the server's code (missing_field, bad_field, too_long,
 * forbidden, not_found, too_large, busy, unavailable, ...); getStatus() the
 * HTTP status. A refused call changed nothing, but a push answered 503
 * unavailable may still be delivered (see Client::push).
 */
class ApiException extends SideApiException
{
    public function __construct(
        private readonly string $errorCode,
        string $message,
        private readonly int $status,
        private readonly string $method = '',
        private readonly string $path = '',
    ) {
        $shown = \strlen($path) > 120 ? \substr($path, 0, 120) . '...' : $path;
        parent::__construct(\sprintf('%s %s: %d %s: %s', $method, $shown, $status, $errorCode, $message), $status);
    }

    /** The server's error code, e.g. "missing_field". */
    public function getErrorCode(): string
    {
        return $this->errorCode;
    }

    /** The HTTP status of the answer. */
    public function getStatus(): int
    {
        return $this->status;
    }

    /** The call, e.g. "POST" and "/api/push". */
    public function getMethod(): string
    {
        return $this->method;
    }

    public function getPath(): string
    {
        return $this->path;
    }

    /** The exception class for an error answer. */
    public static function fromAnswer(int $status, string $code, string $message, string $method, string $path): self
    {
        $class = match (true) {
            $status === 401 => UnauthorizedException::class,
            $status === 403 => ForbiddenException::class,
            $status === 404 => NotFoundException::class,
            $status === 413, $code === 'too_large' => TooLargeException::class,
            $status === 503 => UnavailableException::class,
            $status >= 500 => ServerException::class,
            default => BadRequestException::class,
        };
        return new $class($code, $message, $status, $method, $path);
    }
}
