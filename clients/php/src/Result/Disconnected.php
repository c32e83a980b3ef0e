<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Result;

/**
 * What a disconnect did: $closed counts the connections the answering node
 * closed; $announced says the other nodes were told to close theirs (cluster).
 */
final class Disconnected
{
    public function __construct(
        public readonly int $closed,
        public readonly bool $announced,
    ) {
    }
}
