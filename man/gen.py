#!/usr/bin/env python3
"""Generates ferry(1), ferryd(8), ferryd.conf(5) and the bash completion
from the tables in the binaries (ferry --dump-commands, ferryd
--dump-options) and the prose in man/*.in. meson runs it at build time;
nothing it writes is edited by hand.

  gen.py man TEMPLATE BINARY [KEY=VALUE...]   a page: @TABLE@ markers filled
  gen.py bash FERRY                           the bash completion
"""
import json
import re
import subprocess
import sys

OPT_ENTRY = re.compile(r"^\s{0,4}(--?[a-z]\S*(?: \S+)?)\s{2,}(\S.*)$")
OPT_ALONE = re.compile(r"^\s{0,4}(--[a-z]\S*(?: \S+)?)$")
OPT_TOKEN = re.compile(r"--[a-z][a-z0-9-]*")


def dump(binary):
    flag = "--dump-options" if binary.endswith("ferryd") else "--dump-commands"
    return json.loads(subprocess.run([binary, flag], check=True, capture_output=True, text=True).stdout)


# ---- roff

def esc(text):
    """Text for a roff line: backslashes and minus signs escaped, and no
    line that starts like a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def synopsis(text):
    """'NAME [--force] [--timeout SECONDS]': options bold, placeholders italic."""
    out = esc(text)
    out = re.sub(r"(\\-\\-[a-z0-9\\-]+)", r"\\fB\1\\fR", out)
    return re.sub(r"\b([A-Z][A-Z0-9_]+)\b", r"\\fI\1\\fR", out)


def help_roff(text):
    """A help text of the table as roff: 'OPTION  description' lines become
    tagged paragraphs, lines starting 'ferry ' examples, the rest filled."""
    lines, out, para, i = text.splitlines(), [], [], 0

    def flush():
        if para:
            out.append(".PP")
            out.extend(esc(p) for p in para)
            para.clear()

    while i < len(lines):
        line = lines[i]
        m = OPT_ENTRY.match(line)
        alone = OPT_ALONE.match(line) and i + 1 < len(lines) and lines[i + 1].startswith(" " * 8)
        if not line.strip():
            flush()
        elif m or alone:
            flush()
            out += [".TP", synopsis(m.group(1) if m else line.strip())]
            if m:
                out.append(esc(m.group(2)))
            while i + 1 < len(lines) and lines[i + 1].startswith(" " * 8):
                i += 1
                out.append(esc(lines[i].strip()))
        elif line.startswith("  ferry "):
            flush()
            out += [".PP", ".nf", ".RS 4"]
            while i < len(lines) and lines[i].startswith("  ferry "):
                out.append(esc(lines[i].strip()))
                i += 1
            out += [".RE", ".fi"]
            continue
        elif line.endswith(":") and len(line) < 24:
            flush()
            out += [".PP", esc(line)]
        else:
            para.append(line.strip())
        i += 1
    flush()
    return out


def settings_roff(settings):
    out = []
    for s in settings:
        out += [".TP", f"\\fB{esc(s['name'])}\\fR {esc(s['allowed'])}",
                esc(s["help"]) + ".",
                f"Default: {esc(s['default']) if s['default'] else 'empty'}."]
    return out


def ferry_sections(d):
    opts = []
    for o in d["options"]:
        flags = ", ".join(f"\\fB{esc(f)}\\fR" for f in o["flags"].split(", "))
        opts += [".TP", flags + (f" \\fI{esc(o['arg'])}\\fR" if o["arg"] else ""),
                 esc(o["help"][:1].upper() + o["help"][1:]) + "."]
    cmds, group = [], None
    for c in d["commands"]:
        if c["group"] != group:
            group = c["group"]
            cmds.append(f'.SS "{esc(group)} commands"')
        cmds += [".TP", f"\\fBferry {esc(c['group'])} {esc(c['name'])}\\fR {synopsis(c['args'])}".rstrip(),
                 esc(c["summary"]) + "."]
        body = help_roff(c["help"])
        if body:
            cmds += [".RS"] + body + [".RE"]
    return {"OPTIONS": opts, "COMMANDS": cmds, "SETTINGS": settings_roff(d["settings"])}


def ferryd_sections(d):
    opts, keys = [], []
    for o in d["options"]:
        arg = f" \\fI{esc(o['arg'])}\\fR" if o["arg"] else ""
        text = esc(o["help"][:1].upper() + o["help"][1:]) + "."
        if o["option"]:
            opts += [".TP", f"\\fB\\-\\-{esc(o['name'])}\\fR{arg}", text]
            if o["conf"]:
                opts.append(f"Also the configuration file key \\fB{esc(o['name'])}\\fR.")
        if o["conf"]:
            keys += [".TP", f"\\fB{esc(o['name'])} =\\fR{arg}", text]
            if not o["option"]:
                keys.append("This key has no command-line option.")
    return {"OPTIONS": opts, "KEYS": keys, "SETTINGS": settings_roff(d["settings"])}


def man(template, binary, subst):
    d = dump(binary)
    sections = ferryd_sections(d) if binary.endswith("ferryd") else ferry_sections(d)
    subst = dict(subst, VERSION=d["version"])
    out = []
    for line in open(template, encoding="utf-8").read().splitlines():
        m = re.fullmatch(r"@([A-Z_]+)@", line)
        if m:
            out += sections[m.group(1)]
            continue
        out.append(re.sub(r"@([A-Z_]+)@", lambda k: esc(subst[k.group(1)]), line))
    sys.stdout.write("\n".join(out) + "\n")


# ---- bash completion

def options_of(cmd):
    """Options of a command from its synopsis and help text: name -> the
    argument's metavariable ('' for a flag). Prose like '--force turns it
    off' yields a flag; a table line or synopsis '--timeout SECONDS' an
    argument."""
    found = {}
    for text in (cmd["args"], cmd["help"]):
        for m in re.finditer(r"(--[a-z][a-z0-9-]*)(?:[ =](\S+))?", text):
            arg = (m.group(2) or "").strip("[]")
            is_arg = bool(re.match(r"[A-Z/]", arg)) or "|" in arg
            if found.get(m.group(1)):
                continue
            found[m.group(1)] = arg if is_arg else ""
    for o in ("--json", "--quiet", "--help"):
        found.setdefault(o, "")
    return found


def positionals(args):
    words, out, i = args.replace("[", " ").replace("]", " ").split(), [], 0
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            nxt = words[i + 1] if i + 1 < len(words) else ""
            i += 2 if re.match(r"[A-Z/]", nxt) or "|" in nxt else 1
            continue
        if w not in ("OPTIONS", "ARGS...") and not w.endswith("..."):
            out.append(w)
        i += 1
    return out


def kind(group, meta):
    """What completes a placeholder: a kind known to _ferry_kind."""
    base = re.match(r"[A-Za-z/|.-]*", meta).group(0).split("[")[0]
    if "|" in base:
        return "words:" + base.replace("|", " ")
    return {("vm", "NAME"): "vm", ("switch", "NAME"): "switch", ("host", "NAME"): "setting"}.get(
        (group, base), {"HOST": "host", "FQDN": "host", "DIR": "dir", "FILE": "file", "PATH": "file",
                        "ID": "job", "SWITCH": "switch", "IFACE": "iface"}.get(base, ""))


def bash(ferry):
    d = dump(ferry)
    groups = sorted({c["group"] for c in d["commands"]})
    cmds, opts, optargs, pos = {}, [], [], []
    for c in d["commands"]:
        key = f"{c['group']} {c['name']}"
        cmds.setdefault(c["group"], []).append(c["name"])
        o = options_of(c)
        opts.append(f'"{key}") echo "{" ".join(sorted(o))}" ;;')
        for name, meta in sorted(o.items()):
            if meta:
                optargs.append(f'"{key} {name}") echo "{kind(c["group"], meta) or "none"}" ;;')
        if c["args"].startswith("NAME VALUE"):
            pos.append(f'"{key} "*) (( $2 % 2 )) && echo "value:$3" || echo setting ;;')
            continue
        for n, p in enumerate(positionals(c["args"])):
            # the NAME of a VM or switch being made is a new one
            k = "" if c["name"] in ("define", "create") and n == 0 else kind(c["group"], p)
            pos.append(f'"{key} {n}") echo "{k}" ;;')
    glob_arg = [f for o in d["options"] if o["arg"] for f in o["flags"].split(", ")]
    glob = [f for o in d["options"] for f in o["flags"].split(", ")]
    values = [f'{s["name"]}) words="{s["allowed"].replace("|", " ")}" ;;' for s in d["settings"]
              if "|" in s["allowed"] and " " not in s["allowed"]]
    nl = "\n\t"
    sys.stdout.write(f"""# bash completion for ferry(1) {d["version"]}.
# Generated by man/gen.py from ferry's command table (ferry --dump-commands):
# do not edit. VM, switch and job names come from the local ferryd, quietly
# none when it does not answer.

_ferry_groups="{" ".join(groups)}"
_ferry_global="{" ".join(glob)}"
_ferry_global_arg="{" ".join(glob_arg)}"

_ferry_commands() {{
	case $1 in
	{nl.join(f'{g}) echo "{" ".join(cmds[g])}" ;;' for g in groups)}
	esac
}}

_ferry_options() {{
	case "$1" in
	{nl.join(opts)}
	esac
}}

# the kind of argument an option takes, none for a value nothing completes
_ferry_optarg() {{
	case "$1" in
	{nl.join(optargs)}
	esac
}}

# the kind of the positional argument number $2 of command $1 (previous word $3)
_ferry_positional() {{
	case "$1 $2" in
	{nl.join(pos)}
	esac
}}

# names from 'ferry --json GROUP list': the "KEY" of each element of the list
_ferry_names() {{
	[ -n "$_ferry_remote" ] && return
	ferry "${{_ferry_sock[@]}}" --json $1 list 2>/dev/null |
		sed -n "s/^      \\"$2\\": \\"\\{{0,1\\}}\\([^\\",]*\\)\\"\\{{0,1\\}},\\{{0,1\\}}$/\\1/p"
}}

_ferry_kind() {{
	local cur=$2 words=
	case $1 in
	vm) words=$(_ferry_names vm name) ;;
	switch) words=$(_ferry_names switch name) ;;
	job) words=$(_ferry_names job id) ;;
	setting) words="{" ".join(x["name"] for x in d["settings"])}" ;;
	value:*)
		case ${{1#value:}} in
		{(nl + chr(9)).join(values)}
		esac ;;
	words:*) words=${{1#words:}} ;;
	host) COMPREPLY=($(compgen -A hostname -- "$cur")); return ;;
	dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	iface) words=$(ls /sys/class/net 2>/dev/null) ;;
	esac
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}

_ferry() {{
	local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
	local i w group= cmd= npos=0 want= optk
	_ferry_sock=() _ferry_remote=
	COMPREPLY=()
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${{COMP_WORDS[i]}}
		if [ -n "$want" ]; then
			[ "$want" = --socket ] && _ferry_sock=(--socket "$w")
			want=
			continue
		fi
		case $w in
		-H | --host) _ferry_remote=1 want=$w ;;
		-*)
			if [ -z "$group" ]; then
				[[ " $_ferry_global_arg " == *" $w "* ]] && want=$w
			elif [ -n "$(_ferry_optarg "$group $cmd $w")" ]; then
				want=$w
			fi ;;
		*)
			if [ -z "$group" ]; then group=$w
			elif [ -z "$cmd" ]; then cmd=$w
			else npos=$((npos + 1)); fi ;;
		esac
	done
	if [ -n "$want" ]; then
		if [ -z "$group" ]; then
			case $want in
			-H | --host) _ferry_kind host "$cur" ;;
			--socket) _ferry_kind file "$cur" ;;
			esac
		else
			optk=$(_ferry_optarg "$group $cmd $want")
			[ "$optk" != none ] && _ferry_kind "$optk" "$cur"
		fi
		return
	fi
	if [ -z "$group" ]; then
		case $cur in
		-*) COMPREPLY=($(compgen -W "$_ferry_global" -- "$cur")) ;;
		*) COMPREPLY=($(compgen -W "$_ferry_groups" -- "$cur")) ;;
		esac
	elif [ -z "$cmd" ]; then
		COMPREPLY=($(compgen -W "$(_ferry_commands "$group")" -- "$cur"))
	elif [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_ferry_options "$group $cmd")" -- "$cur"))
	else
		_ferry_kind "$(_ferry_positional "$group $cmd" "$npos" "$prev")" "$cur"
	fi
}}

complete -F _ferry ferry
""")


def main(argv):
    if len(argv) >= 3 and argv[0] == "man":
        man(argv[1], argv[2], dict(a.split("=", 1) for a in argv[3:]))
    elif len(argv) == 2 and argv[0] == "bash":
        bash(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
