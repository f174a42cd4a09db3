// PLACEHOLDER: replaced by the issue that builds this command.
import type { Command } from 'commander';
export function register(_program: Command): void {}
