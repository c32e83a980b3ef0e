<?php

declare(strict_types=1);

namespace ChatServer\SideApi\Exception;

/** Every error this package throws: catch it to catch them all. */
abstract class SideApiException extends \RuntimeException
{
}
