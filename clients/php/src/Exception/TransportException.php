<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** The call got no answer from the server: the network, not the server, failed. */
class TransportException extends SideApiException
{
}
