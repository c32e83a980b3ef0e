<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Result;

/** What a group push did: the group's size, how many got it live, how many have it stored. */
final class GroupPush
{
    public function __construct(
        public readonly int $members,
        public readonly int $pushed,
        public readonly int $stored,
    ) {
    }
}
