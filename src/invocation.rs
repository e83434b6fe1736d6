//! Pure: how a probe's command is started. A command with no shell syntax is exec'd directly,
//! as GNU make does for a recipe line, which saves the start of a shell; any other command is
//! given to `/bin/sh -c`, as jaildaemon 0.2 did.
//!
//! The rule (README, "Commands without a shell"): the command is exec'd directly when it
//! - holds none of the characters the shell treats specially anywhere in a word: quotes,
//!   backslash, `$`, backquote, `;`, `&`, `|`, `<`, `>`, `(`, `)`, `{`, `}`, `*`, `?`, `[`,
//!   `]`, `~`, `#`, `!`, `=`, `%`, nor a newline or any other control character but a tab;
//! - has at least one word;
//! - and its first word is not a shell keyword or builtin (the union of those of dash,
//!   FreeBSD's sh and bash, so that what a shell would do itself is left to the shell).
//!
//! Then the words are the blank-separated (space, tab) pieces; the first is the program,
//! looked up in `PATH` when it holds no `/`, and it gets the words as its argv, `$0` included,
//! exactly as `sh -c` would give them. A program that cannot be exec'd (not found, not
//! executable, not a binary) is handed to `/bin/sh -c` after all, so that its exit status
//! (127, 126) and message are the shell's own.
//!
//! `=` and `%` are not special to `sh` in every place, but a word holding `=` may be an
//! assignment (`NAME=value cmd`) and `%` starts job specifications; excluding both keeps the
//! rule simple to state and never wrong.

/// How a command is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `/bin/sh -c COMMAND`.
    Shell,
    /// The program and its arguments, split on blanks: `words[0]` is the program.
    Direct { words: Vec<String> },
}

/// Characters that make a command the shell's, wherever they appear.
const SPECIAL: &[char] = &[
    '\'', '"', '\\', '$', '`', ';', '&', '|', '<', '>', '(', ')', '{', '}', '*', '?', '[', ']',
    '~', '#', '!', '=', '%',
];

/// Words a shell treats itself when they come first: keywords and builtins of dash, FreeBSD's
/// sh and bash. Running one of them directly would find another program, or none.
const SHELL_WORDS: &[&str] = &[
    // Keywords.
    "case",
    "coproc",
    "do",
    "done",
    "elif",
    "else",
    "esac",
    "fi",
    "for",
    "function",
    "if",
    "in",
    "select",
    "then",
    "time",
    "until",
    "while", // Special and regular builtins.
    ".",
    ":",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "chdir",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobid",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "setvar",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

impl Invocation {
    /// Decides how `command` is started; see the module's rule.
    pub fn of(command: &str) -> Invocation {
        let special = |c: char| SPECIAL.contains(&c) || (c.is_control() && c != '\t');
        if command.chars().any(special) {
            return Invocation::Shell;
        }
        let words: Vec<String> = command
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        match words.first() {
            None => Invocation::Shell,
            Some(first) if SHELL_WORDS.contains(&first.as_str()) => Invocation::Shell,
            Some(_) => Invocation::Direct { words },
        }
    }
}

/// The paths to try for `program`, in order, as `sh` searches `path` (a `PATH` value): the
/// program itself when it holds a `/`, else each directory of `path` joined with it (an empty
/// entry is the current directory, which for a command is `/`).
pub fn candidates(program: &str, path: &str) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_owned()];
    }
    path.split(':')
        .map(|dir| match dir {
            "" => format!("./{program}"),
            dir => format!("{}/{program}", dir.trim_end_matches('/')),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(words: &[&str]) -> Invocation {
        Invocation::Direct {
            words: words.iter().map(|w| w.to_string()).collect(),
        }
    }

    #[test]
    fn plain_words_are_exec_directly() {
        assert_eq!(Invocation::of("logger"), direct(&["logger"]));
        assert_eq!(
            Invocation::of("  zfs snapshot\ttank/jails@now  "),
            direct(&["zfs", "snapshot", "tank/jails@now"])
        );
        assert_eq!(
            Invocation::of("/usr/sbin/service nginx reload"),
            direct(&["/usr/sbin/service", "nginx", "reload"])
        );
        // Characters that are plain in every position of a word.
        assert_eq!(
            Invocation::of("logger -t jd a.b,c:d+e@f^g/h-i_j"),
            direct(&["logger", "-t", "jd", "a.b,c:d+e@f^g/h-i_j"])
        );
        // A keyword further along is only an argument.
        assert_eq!(
            Invocation::of("logger if then"),
            direct(&["logger", "if", "then"])
        );
    }

    #[test]
    fn every_special_character_leaves_it_to_the_shell() {
        for c in SPECIAL.iter().chain(&['\n', '\r', '\0', '\x1b']) {
            for command in [
                format!("logger a{c}b"),
                format!("{c}logger"),
                format!("logger {c}"),
            ] {
                assert_eq!(Invocation::of(&command), Invocation::Shell, "{command:?}");
            }
        }
    }

    #[test]
    fn shell_words_assignments_and_empty_commands_are_the_shells() {
        for command in [
            "echo hi",
            "exit 3",
            "true",
            "test -e /x",
            ". /etc/profile",
            "if true",
            "exec logger hi",
            "cd /tmp",
            "kill 1",
            "FOO=1 logger",
            "",
            "  \t ",
        ] {
            assert_eq!(Invocation::of(command), Invocation::Shell, "{command:?}");
        }
    }

    #[test]
    fn candidates_follow_path_as_sh_does() {
        assert_eq!(candidates("/bin/x", "/a:/b"), ["/bin/x"]);
        assert_eq!(candidates("sub/x", "/a"), ["sub/x"]);
        assert_eq!(candidates("x", "/a:/b/:"), ["/a/x", "/b/x", "./x"]);
    }
}
