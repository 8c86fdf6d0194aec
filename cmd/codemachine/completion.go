package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/templates"
	"github.com/codemachine/codemachine/watch"
	"github.com/codemachine/codemachine/workflow"
)

// Shell completion: `codemachine completion SHELL` prints a script for the
// shell that asks `codemachine __complete WORDS...` (the words typed so
// far, the last one being completed) for candidates, one per line as
// "candidate<TAB>description". The candidates come from the command
// definitions themselves (commands, subcommands, flags) and, for the
// arguments that name steps, from the workflow at HEAD (step ids and
// STEP/TASK ids).

var completionScripts = map[string]string{
	"bash": `# bash completion for codemachine: source <(codemachine completion bash)
_codemachine() {
	local IFS=$'\n'
	local words=("${COMP_WORDS[@]:1:COMP_CWORD}")
	COMPREPLY=($(codemachine __complete "${words[@]}" 2>/dev/null | cut -f1))
}
complete -o default -F _codemachine codemachine
`,
	"zsh": `#compdef codemachine
# zsh completion for codemachine: source <(codemachine completion zsh)
# (after compinit), or save it as _codemachine in a directory of $fpath.
_codemachine() {
	local -a lines items
	local line
	lines=("${(@f)$(codemachine __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	for line in $lines; do
		[[ -n $line ]] || continue
		items+=("${${line%%$'\t'*}//:/\\:}:${line#*$'\t'}")
	done
	(( ${#items} )) && _describe codemachine items || _files
}
compdef _codemachine codemachine
`,
	"fish": `# fish completion for codemachine: codemachine completion fish | source
# Where codemachine offers nothing (-C DIR, schema -o FILE), paths, as
# bash and zsh complete them.
function __codemachine_complete
	set -l tokens (commandline -opc) (commandline -ct)
	set -l out (codemachine __complete $tokens[2..-1] 2>/dev/null)
	if set -q out[1]
		printf '%s\n' $out
	else
		__fish_complete_path (commandline -ct)
	end
end
complete -c codemachine -f -a '(__codemachine_complete)'
`,
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash | zsh | fish",
		Description: `Completes commands, flags, step ids and STEP/TASK ids (from the workflow at HEAD).

  bash:  source <(codemachine completion bash)        (in ~/.bashrc)
  zsh:   source <(codemachine completion zsh)         (in ~/.zshrc, after compinit)
  fish:  codemachine completion fish | source          (in ~/.config/fish/config.fish)`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("completion needs the shell: bash, zsh or fish")
			}
			script, ok := completionScripts[c.Args().First()]
			if !ok {
				return usageErrorf("no completion for %q (bash, zsh or fish)", c.Args().First())
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

// completeCommand is the hidden command the scripts call.
func completeCommand() *cli.Command {
	return &cli.Command{
		Name:            "__complete",
		Hidden:          true,
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			words := c.Args().Slice()
			dir := completionDir(words)
			for _, cand := range complete(c.App, words, func(agentSteps bool) []completion { return unitKeys(dir, agentSteps) }) {
				fmt.Fprintf(c.App.Writer, "%s\t%s\n", cand.value, cand.desc)
			}
			return nil
		},
	}
}

// completionDir is the directory a -C DIR (or -C=DIR) among the words
// before the one being completed names, else "" (the working directory).
func completionDir(words []string) string {
	words, _ = joinAssignments(words)
	dir := ""
	for i := 0; i < len(words)-1; i++ {
		if d, ok := strings.CutPrefix(words[i], "-C="); ok {
			dir = d
		} else if words[i] == "-C" && i+1 < len(words)-1 {
			dir = words[i+1]
		}
	}
	return dir
}

// completion is a candidate and what it is.
type completion struct{ value, desc string }

// keysFunc lists the workflow's steps and tasks; with agentSteps, only
// those of agent steps (open takes no command's).
type keysFunc func(agentSteps bool) []completion

// complete returns the candidates for the last of words (what is being
// typed), after the ones before it. keys lists the workflow's steps and
// tasks, asked only when an argument names one.
func complete(app *cli.App, words []string, keys keysFunc) []completion {
	if len(words) == 0 {
		words = []string{""}
	}
	words, split := joinAssignments(words)
	partial, before := words[len(words)-1], words[:len(words)-1]
	var cmd *cli.Command
	args := 0 // positional arguments given to cmd
	for i := 0; i < len(before); i++ {
		w := before[i]
		switch {
		case strings.HasPrefix(w, "-"):
			flags := app.Flags
			if cmd != nil {
				flags = cmd.Flags
			}
			if takesValue(flags, w) {
				i++
			}
		case cmd == nil:
			cmd = app.Command(w)
			if cmd == nil {
				return nil
			}
		case len(cmd.Subcommands) > 0 && cmd.Command(w) != nil:
			cmd = cmd.Command(w)
		default:
			args++
		}
	}
	if name, value, ok := strings.Cut(partial, "="); ok && strings.HasPrefix(name, "-") {
		return assignedValues(flagsOf(app, cmd), name, value, split)
	}
	var out []completion
	switch {
	case len(before) > 0 && strings.HasPrefix(before[len(before)-1], "-") && takesValue(flagsOf(app, cmd), before[len(before)-1]):
		out = flagValues(before[len(before)-1])
	case strings.HasPrefix(partial, "-"):
		out = flagNames(flagsOf(app, cmd))
	case cmd == nil:
		for _, c := range app.Commands {
			if !c.Hidden {
				out = append(out, completion{c.Name, c.Usage})
			}
		}
	case len(cmd.Subcommands) > 0:
		for _, c := range cmd.Subcommands {
			if !c.Hidden {
				out = append(out, completion{c.Name, c.Usage})
			}
		}
	default:
		out = positional(cmd.Name, args, keys)
	}
	return withPrefix(out, partial)
}

// joinAssignments puts back together what bash split: its
// COMP_WORDBREAKS holds "=", so "--engine=cl" arrives as "--engine", "=",
// "cl" (and "--engine=" as "--engine", "="), where zsh and fish pass one
// word. split says whether the last word was put together, in which case
// bash completes only what follows the "=".
func joinAssignments(words []string) (joined []string, split bool) {
	for i := 0; i < len(words); i++ {
		w := words[i]
		if strings.HasPrefix(w, "-") && !strings.Contains(w, "=") && i+1 < len(words) && words[i+1] == "=" {
			w += "="
			i++
			if i+1 < len(words) {
				w += words[i+1]
				i++
			}
			split = i == len(words)-1
		}
		joined = append(joined, w)
	}
	return joined, split
}

// assignedValues completes the value of a flag typed as --flag=VALUE: the
// whole word for zsh and fish, what follows the "=" when bash split it.
func assignedValues(flags []cli.Flag, name, value string, split bool) []completion {
	if !takesValue(flags, name) {
		return nil
	}
	var out []completion
	for _, c := range withPrefix(flagValues(name), value) {
		if !split {
			c.value = name + "=" + c.value
		}
		out = append(out, c)
	}
	return out
}

func flagsOf(app *cli.App, cmd *cli.Command) []cli.Flag {
	if cmd == nil {
		return app.Flags
	}
	return cmd.Flags
}

// flagNames lists flags as they are typed, without the hidden ones.
func flagNames(flags []cli.Flag) []completion {
	var out []completion
	for _, f := range flags {
		usage := ""
		if df, ok := f.(cli.DocGenerationFlag); ok {
			usage = strings.ReplaceAll(df.GetUsage(), "`", "")
		}
		for _, n := range f.Names() {
			dashes := "--"
			if len(n) == 1 {
				dashes = "-"
			}
			out = append(out, completion{dashes + n, usage})
		}
	}
	return out
}

// flagValues are the values a flag takes, when there are few.
func flagValues(flag string) []completion {
	switch strings.TrimLeft(flag, "-") {
	case "engine":
		var out []completion
		for _, e := range agents.AgentEngines() {
			out = append(out, completion{e, "engine"})
		}
		return out
	case "trigger":
		return []completion{{watch.TriggerCommit, "a commit starts a pass"}, {watch.TriggerSave, "saving an input starts a pass"}}
	case "format":
		return []completion{{"mermaid", ""}, {"dot", ""}}
	case "template", "t":
		var out []completion
		for _, n := range templates.Names() {
			out = append(out, completion{n, "built-in template"})
		}
		return out
	case "ci":
		return []completion{{"github", "GitHub Actions"}}
	}
	return nil
}

// stepArgs are the commands whose arguments are steps (or STEP/TASK),
// with how many they take (-1: any number).
var stepArgs = map[string]int{"run": -1, "diff": 1, "approve": 1, "reject": 1, "rollback": 1, "retry": 1, "open": 1, "push": 1}

// positional are the candidates for a command's next argument.
func positional(cmd string, given int, keys keysFunc) []completion {
	switch cmd {
	case "completion":
		if given == 0 {
			return []completion{{"bash", ""}, {"zsh", ""}, {"fish", ""}}
		}
	case "schema":
		if given == 0 {
			return []completion{{workflow.SchemaWorkflow, "workflow.yaml"}, {workflow.SchemaAgent, "agent front matter"}}
		}
	}
	if n, ok := stepArgs[cmd]; ok && (n < 0 || given < n) {
		if cmd == "approve" || cmd == "reject" {
			if waiting := waitingForReview(keys(false)); len(waiting) > 0 {
				return waiting
			}
		}
		return keys(cmd == "open")
	}
	return nil
}

// waitingForReview are the keys whose state is review, less a step whose
// tasks wait (approve and reject name those one by one). When none waits
// here, approve and reject complete every key: a worker's review may be
// on the remote only.
func waitingForReview(keys []completion) []completion {
	inReview := func(c completion) bool {
		return c.desc == orchestrator.StateReview || strings.HasPrefix(c.desc, orchestrator.StateReview+": ")
	}
	var out []completion
	for _, k := range keys {
		if !inReview(k) {
			continue
		}
		tasksWait := slices.ContainsFunc(keys, func(t completion) bool {
			return strings.HasPrefix(t.value, k.value+"/") && inReview(t)
		})
		if !tasksWait {
			out = append(out, k)
		}
	}
	return out
}

// unitKeys are the workflow's steps and tasks at HEAD, with their state;
// with agentSteps, those of agent steps only (a run: step's engine is
// shell).
func unitKeys(dir string, agentSteps bool) []completion {
	if dir == "" {
		dir, _ = os.Getwd()
	}
	o, err := orchestrator.New(orchestrator.Config{Dir: dir, Environ: os.Environ()})
	if err != nil {
		return nil
	}
	r, err := o.Status(orchestrator.Overrides{})
	if err != nil {
		return nil
	}
	var out []completion
	for _, s := range r.Steps {
		if agentSteps && s.Engine == "shell" {
			continue
		}
		out = append(out, completion{s.ID, s.State})
		for _, t := range s.Tasks {
			out = append(out, completion{s.ID + "/" + t.ID, t.State + ": " + t.Title})
		}
	}
	return out
}

// withPrefix keeps the candidates that start with prefix.
func withPrefix(cands []completion, prefix string) []completion {
	var out []completion
	for _, c := range cands {
		if strings.HasPrefix(c.value, prefix) {
			out = append(out, c)
		}
	}
	return out
}
