<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** A notification event that is not the server's, or is too old (Webhook::verify). */
final class WebhookException extends SideApiException
{
}
