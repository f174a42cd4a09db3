// `sedna-ll completion bash|zsh|fish`: a shell completion script generated from the command tree
// itself (every command, subcommand and option as registered), so it cannot drift from the CLI.
// The scripts are static: completing never starts node.
import type { Command } from 'commander';
import { EXIT_HELP, UsageError } from '../errors.js';
import { run } from './action.js';

interface Node {
  /** "" for the program, "kb device" for a subcommand */
  path: string;
  subcommands: string[];
  options: string[];
}

function walk(cmd: Command, prefix: string[] = []): Node[] {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  const options = [...cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)), '--help'];
  const here: Node = { path: prefix.join(' '), subcommands: [...subs.map((c) => c.name()), ...(prefix.length === 0 ? ['help'] : [])], options };
  return [here, ...subs.flatMap((c) => walk(c, [...prefix, c.name()]))];
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function bash(nodes: Node[]): string {
  const entries = nodes.map((n) => `  [${q(n.path || '.')}]=${q([...n.subcommands, ...n.options].join(' '))}`).join('\n');
  return `# sedna-ll bash completion: source it, or save it as /etc/bash_completion.d/sedna-ll
_sedna_ll() {
  local -A words=(
${entries}
  )
  local cmdpath="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ $w == -* ]] && continue
    if [[ -n "\${words[\${cmdpath:+$cmdpath }$w]+x}" ]]; then cmdpath="\${cmdpath:+$cmdpath }$w"; fi
  done
  COMPREPLY=($(compgen -W "\${words[\${cmdpath:-.}]}" -- "\${COMP_WORDS[COMP_CWORD]}"))
  [[ \${#COMPREPLY[@]} -eq 0 ]] && COMPREPLY=($(compgen -f -- "\${COMP_WORDS[COMP_CWORD]}"))
  return 0
}
complete -o default -F _sedna_ll sedna-ll
`;
}

function zsh(nodes: Node[]): string {
  const entries = nodes.map((n) => `    ${q(n.path || '.')} ${q([...n.subcommands, ...n.options].join(' '))}`).join('\n');
  return `#compdef sedna-ll
# sedna-ll zsh completion: save as _sedna-ll in a directory of $fpath, or source it
_sedna_ll() {
  local -A table
  table=(
${entries}
  )
  local cmdpath="" w
  for w in \${words[2,CURRENT-1]}; do
    [[ $w == -* ]] && continue
    (( \${+table[\${cmdpath:+$cmdpath }$w]} )) && cmdpath="\${cmdpath:+$cmdpath }$w"
  done
  local -a cands
  cands=(\${=table[\${cmdpath:-.}]})
  compadd -a cands
  _files
}
compdef _sedna_ll sedna-ll
`;
}

function fish(nodes: Node[]): string {
  const entries = nodes.map((n) => `    case ${q(n.path || '.')}\n        echo ${[...n.subcommands, ...n.options].map(q).join(' ')}`).join('\n');
  return `# sedna-ll fish completion: save as ~/.config/fish/completions/sedna-ll.fish
function __sedna_ll_words
    set -l path ''
    for w in (commandline -opc)[2..-1]
        string match -q -- '-*' $w; and continue
        set -l next (string trim -- "$path $w")
        if contains -- $w (__sedna_ll_table $path)
            set path $next
        end
    end
    __sedna_ll_table $path
end
function __sedna_ll_table
    set -l key (string trim -- "$argv")
    test -z "$key"; and set key '.'
    switch $key
${entries}
    end | string split ' '
end
complete -c sedna-ll -a '(__sedna_ll_words)'
`;
}

const SHELLS = { bash, zsh, fish };

export function register(program: Command): void {
  program
    .command('completion')
    .argument('<shell>', 'bash | zsh | fish')
    .description('print a shell completion script for bash, zsh or fish')
    .addHelpText(
      'after',
      `
Examples:
  source <(sedna-ll completion bash)                          # this shell
  sedna-ll completion bash > /etc/bash_completion.d/sedna-ll  # every shell
  sedna-ll completion zsh > "\${fpath[1]}/_sedna-ll"
  sedna-ll completion fish > ~/.config/fish/completions/sedna-ll.fish

${EXIT_HELP}
`,
    )
    .action(
      run((shell: string, _o: unknown, cmd: Command) => {
        if (!Object.hasOwn(SHELLS, shell)) throw new UsageError(`completion "${shell}": expected bash, zsh or fish`);
        process.stdout.write(SHELLS[shell as keyof typeof SHELLS](walk(cmd.parent!)));
      }),
    );
}
