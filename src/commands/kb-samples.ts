// PLACEHOLDER: replaced by the issue that builds these kb subcommands.
import type { Command } from 'commander';
export function register(_kb: Command): void {}
