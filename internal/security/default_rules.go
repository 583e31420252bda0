package security

// DefaultRules returns the built-in rule set (a fresh copy each call).
// docs/security-rules.md lists them with what each one catches.
func DefaultRules() []Rule {
	var (
		// rootPaths: the root directory, as named or as "/*" typed.
		rootPaths = []string{"/", `/\*`}
		// systemDirs: top-level system directories and the main ones
		// under /usr and /var.
		systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
			"/opt", "/proc", "/sbin", "/srv", "/sys", "/usr", "/usr/*", "/var", "/var/lib"}
		homePaths = []string{"~", `~/\*`}
		recursive = []string{"-R", "-r", "--recursive"}
		// blockDevices: disks, partitions and raw memory.
		blockDevices = []string{"/dev/sd*", "/dev/hd*", "/dev/vd*", "/dev/xvd*", "/dev/nvme*", "/dev/mmcblk*",
			"/dev/dm-*", "/dev/md*", "/dev/mapper/*", "/dev/disk/**", "/dev/mem", "/dev/kmem", "/dev/port"}
		authFiles = []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers",
			"/etc/sudoers.d/**"}
		// credentials: private keys, cloud and registry tokens, password
		// hashes. id_*[!b] leaves out the public id_*.pub keys.
		credentials = []string{"~/.ssh/id_*[!b]", "/etc/ssh/ssh_host_*_key", "~/.aws/credentials",
			"/etc/shadow", "/etc/gshadow", "**/.netrc", "~/.docker/config.json", "~/.kube/config",
			"~/.git-credentials", "~/.config/gcloud/**", "~/.azure/**", "~/.pgpass", "~/.pypirc",
			"~/.config/gh/hosts.yml", "~/.gnupg/private-keys-v1.d/**"}
		// readers: programs that show, copy or encode a file's content.
		readers = []string{"cat", "tac", "less", "more", "head", "tail", "nl", "bat", "batcat", "view", "vi",
			"vim", "nano", "cp", "base64", "base32", "basenc", "xxd", "od", "hexdump", "strings", "grep",
			"egrep", "fgrep", "rg", "awk", "gawk", "sed", "sort", "cut", "jq", "tar", "zip", "7z", "gzip",
			"openssl", "gpg", "dd"}
		// senders: programs that send data to another machine.
		senders = []string{"curl", "wget", "scp", "sftp", "rsync", "nc", "ncat", "netcat", "socat", "ftp",
			"tftp", "telnet", "http", "https", "xh", "aws", "gsutil", "rclone", "s3cmd"}
		netSinks = append([]string{"ssh", "openssl"}, senders...)
		// codeRunners: programs that run the code they are given.
		codeRunners = []string{"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "csh",
			"tcsh", "fish", "rbash", "eval", "source", ".", "python*", "pypy*", "perl", "ruby", "node",
			"nodejs", "php", "lua", "deno", "bun"}
		fetchers = []string{"curl", "wget", "fetch", "aria2c", "http", "https", "xh", "lwp-request", "GET"}
		decoders = []string{"base64", "base32", "basenc", "xxd", "openssl", "gunzip", "zcat", "gzip",
			"bzip2", "bunzip2", "bzcat", "xz", "unxz", "xzcat", "uudecode", "rev"}
		mainBranches = []string{"main", "master", "*:main", "*:master", "refs/heads/main", "refs/heads/master",
			"*:refs/heads/main", "*:refs/heads/master"}
	)
	cat := func(lists ...[]string) []string {
		var out []string
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	plus := make([]string, len(mainBranches))
	for i, b := range mainBranches {
		plus[i] = "+" + b
	}
	return []Rule{
		{ID: "rm-root", Level: LevelHigh, Command: []string{"rm"}, Paths: rootPaths,
			Message: "Deletes the root file system (rm on / or /*): everything in the sandbox, mounted work included."},
		{ID: "rm-home", Level: LevelHigh, Command: []string{"rm"}, Paths: homePaths,
			Message: "Deletes the home directory or everything in it: keys, configuration and work."},
		{ID: "rm-system-dir", Level: LevelHigh, Command: []string{"rm"}, Paths: systemDirs,
			Message: "Deletes a system directory (/etc, /usr, /bin, /var...), which breaks the operating system of the sandbox."},
		{ID: "find-delete", Level: LevelHigh, Command: []string{"find"}, Flags: []string{"-delete"},
			Paths:   cat(rootPaths, systemDirs, homePaths),
			Message: "Deletes every file that find reaches from / , a system directory or the home directory."},
		{ID: "log-wipe", Level: LevelHigh, Command: []string{"rm", "shred", "truncate", "unlink"},
			Paths:   []string{"/var/log", "/var/log/**", "~/.*_history", "~/.history"},
			Message: "Deletes or empties system logs or shell history, which hides what was done."},
		{ID: "history-clear", Level: LevelMedium, Command: []string{"history"}, Flags: []string{"-c"},
			Message: "Clears the shell history, which hides what was done."},
		{ID: "histfile-unset", Level: LevelMedium, Command: []string{"unset"}, Args: []string{"HISTFILE"},
			Message: "Turns off the shell history file, which hides what is done next."},
		{ID: "sudo", Level: LevelMedium, Command: []string{"sudo", "doas", "su", "pkexec", "runuser"},
			Message: "Runs a command as root (or another user); the command itself is judged too."},
		{ID: "fork-bomb", Level: LevelHigh, Shape: shapeForkBomb,
			Message: "A fork bomb: a function that starts copies of itself until the sandbox runs out of processes."},
		{ID: "pipe-to-shell", Level: LevelHigh, Command: fetchers, PipeTo: codeRunners,
			Message: "Runs code downloaded from the network without review (curl ... | sh); read it first, then run the saved file."},
		{ID: "decode-to-shell", Level: LevelHigh, Command: decoders, PipeTo: codeRunners,
			Message: "Runs code hidden behind an encoding (base64 -d | sh), a common way to slip commands past review."},
		{ID: "chmod-root", Level: LevelHigh, Command: []string{"chmod"}, Flags: recursive,
			Paths:   cat(rootPaths, systemDirs, homePaths),
			Message: "Recursively changes permissions of / , a system directory or the home directory, which breaks the system or opens it up."},
		{ID: "chown-root", Level: LevelHigh, Command: []string{"chown", "chgrp"}, Flags: recursive,
			Paths:   cat(rootPaths, systemDirs, homePaths),
			Message: "Recursively changes the owner of / , a system directory or the home directory, which breaks sudo, ssh and services."},
		{ID: "disk-write", Level: LevelHigh, Writes: blockDevices,
			Message: "Writes raw data to a disk device or to memory (dd of=/dev/sda, > /dev/sda), destroying its file systems."},
		{ID: "mkfs", Level: LevelHigh,
			Command: []string{"mkfs", "mkfs.*", "mke2fs", "mkswap", "wipefs", "mkdosfs", "mkntfs"},
			Message: "Creates a file system or wipes signatures, erasing what the device held."},
		{ID: "shred-device", Level: LevelHigh, Command: []string{"shred"}, Paths: []string{"/dev/**"},
			Message: "Overwrites a device with random data, destroying it."},
		{ID: "write-auth-files", Level: LevelHigh, Writes: authFiles,
			Message: "Changes the user, password or sudo database (/etc/passwd, /etc/shadow, /etc/sudoers), which can lock everyone out or grant root."},
		{ID: "write-persistence", Level: LevelMedium,
			Writes: []string{"~/.ssh/authorized_keys*", "/etc/ld.so.preload", "/etc/cron*", "/etc/cron*/**",
				"/var/spool/cron/**", "/etc/systemd/system/**", "/etc/init.d/**", "/etc/rc.local",
				"/etc/profile.d/**", "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/**"},
			Message: "Changes what runs at login, boot or on a schedule, or who may log in (authorized_keys, cron, systemd, ld.so.preload)."},
		{ID: "read-credentials", Level: LevelMedium, Command: readers, Paths: credentials,
			Message: "Reads a credential file (SSH private key, cloud or registry token, password hashes); its content would end up in the agent's output."},
		{ID: "exfil-credentials", Level: LevelHigh, Command: senders, Paths: credentials,
			Message: "Sends a credential file (SSH private key, cloud or registry token, password hashes) to another machine."},
		{ID: "credentials-to-network", Level: LevelHigh, Command: readers, Paths: credentials, PipeTo: netSinks,
			Message: "Reads a credential file and feeds it to a network tool, sending it to another machine."},
		{ID: "shutdown", Level: LevelHigh, Command: []string{"shutdown", "reboot", "halt", "poweroff", "kexec"},
			Message: "Shuts down or reboots the machine, ending the sandbox and every process in it."},
		{ID: "shutdown-systemctl", Level: LevelHigh, Command: []string{"systemctl", "telinit", "init"},
			Subcommand: []string{"poweroff", "reboot", "halt", "kexec", "emergency", "rescue", "0", "6"},
			Message:    "Shuts down, reboots or isolates the machine, ending the sandbox and every process in it."},
		{ID: "sysrq", Level: LevelHigh, Writes: []string{"/proc/sysrq-trigger"},
			Message: "Triggers a kernel SysRq action (reboot, crash, kill all), bypassing any clean shutdown."},
		{ID: "kill-all", Level: LevelHigh, Command: []string{"kill"}, Args: []string{"-1"},
			Message: "Signals every process the user may signal (kill -9 -1), which kills the sandbox's agent and all work."},
		{ID: "killall5", Level: LevelHigh, Command: []string{"killall5"},
			Message: "Signals every process on the machine, which kills the sandbox's agent and all work."},
		{ID: "kill-init", Level: LevelHigh, Command: []string{"kill"}, Args: []string{"1"},
			Message: "Signals process 1, which in a sandbox is berth-agent or its init: the sandbox stops."},
		{ID: "kill-agent", Level: LevelHigh, Command: []string{"pkill", "killall"}, Args: []string{"berth-agent*"},
			Message: "Kills berth-agent, which cuts the sandbox off."},
		{ID: "iptables-flush", Level: LevelHigh,
			Command: []string{"iptables", "ip6tables", "iptables-legacy", "ip6tables-legacy", "iptables-nft", "ip6tables-nft"},
			Flags:   []string{"-F", "--flush"},
			Message: "Flushes firewall rules, removing the network isolation they provide."},
		{ID: "nft-flush", Level: LevelHigh, Command: []string{"nft"}, Subcommand: []string{"flush"},
			Message: "Flushes nftables rules, removing the network isolation they provide."},
		{ID: "reverse-shell-nc", Level: LevelHigh,
			Command: []string{"nc", "ncat", "netcat", "nc.traditional", "nc.openbsd"},
			Flags:   []string{"-e", "-c", "--exec", "--sh-exec", "--lua-exec"},
			Message: "netcat with -e/-c hands a shell to a remote machine (a reverse or bind shell)."},
		{ID: "reverse-shell-devtcp", Level: LevelHigh, Writes: []string{"/dev/tcp/**", "/dev/udp/**"},
			Message: "Connects a shell's input or output to a network socket through /dev/tcp (a reverse shell)."},
		{ID: "reverse-shell-socat", Level: LevelHigh, Command: []string{"socat"},
			Args:    []string{"[eE][xX][eE][cC]:*", "[sS][yY][sS][tT][eE][mM]:*"},
			Message: "socat EXEC:/SYSTEM: connects a program such as a shell to a network socket (a reverse or bind shell)."},
		{ID: "setuid", Level: LevelMedium, Command: []string{"chmod"},
			Args:    []string{"+*s*", "[ugoa]*+*s*", "[ugoa]*=*s*", "[2-7][0-7][0-7][0-7]"},
			Message: "Sets the setuid or setgid bit, so the file runs with its owner's (often root's) rights."},
		{ID: "crontab-remove", Level: LevelMedium, Command: []string{"crontab"}, Flags: []string{"-r"},
			Message: "Removes the user's whole crontab without confirmation."},
		{ID: "git-force-push-main", Level: LevelMedium, Command: []string{"git"}, Subcommand: []string{"push"},
			Flags: []string{"-f", "--force", "--force-with-lease"}, Args: mainBranches,
			Message: "Force-pushes to main/master, which can overwrite commits that others rely on."},
		{ID: "git-force-push-refspec", Level: LevelMedium, Command: []string{"git"}, Subcommand: []string{"push"},
			Args:    plus,
			Message: "Force-pushes to main/master with a +refspec, which can overwrite commits that others rely on."},
		{ID: "package-from-url", Level: LevelMedium,
			Command:    []string{"pip", "pip3", "pip3.*", "pipx", "npm", "pnpm", "yarn", "bun", "gem"},
			Subcommand: []string{"install", "i", "add"},
			Args:       []string{"http://*", "https://*", "git+*", "git://*", "github:*", "ftp://*"},
			Message:    "Installs a package straight from a URL, bypassing the registry's name, version and review."},

		// Environment rules (Analyzer.Env). The code in PROMPT_COMMAND,
		// exported functions, prompts and command variables (PAGER,
		// GIT_SSH_COMMAND...) is judged as commands besides.
		{ID: "env-shell-startup", Level: LevelHigh, Env: []string{"BASH_ENV", "ENV"},
			Message: "Makes every non-interactive bash (BASH_ENV) or interactive sh (ENV) first run the file it names: it loads code berth cannot see."},
		{ID: "env-preload", Level: LevelHigh, Env: []string{"LD_PRELOAD", "LD_AUDIT"},
			Message: "Loads a shared library into every program started (LD_PRELOAD, LD_AUDIT): it loads code berth cannot see."},
		{ID: "env-inputrc", Level: LevelHigh, Env: []string{"INPUTRC"},
			Message: "Makes bash's line editor read its key bindings from a file berth cannot see, where a key can type any command: lines typed into a terminal are no longer what berth judges."},
		{ID: "env-library-path", Level: LevelMedium, Env: []string{"LD_LIBRARY_PATH"},
			Message: "Makes programs look for shared libraries in these directories first, so a library there can replace a system one with code berth cannot see (also a common build setting)."},
		{ID: "env-shell-options", Level: LevelMedium, Env: []string{"SHELLOPTS", "BASHOPTS"},
			Message: "Turns on shell options in every bash started, changing how every command runs (xtrace with PS4 runs code at each command)."},
		{ID: "env-prompt-command", Level: LevelMedium, Env: []string{"PROMPT_COMMAND"},
			Message: "Runs as a command at every prompt of an interactive bash, before the shell reads what is typed; the command is judged too."},
		{ID: "env-function", Level: LevelMedium, Env: []string{"BASH_FUNC_*%%", "BASH_FUNC_*()"},
			Message: "Defines a shell function in every bash started, which runs in place of the command of the same name when that is called; the function's body is judged too."},
		{ID: "env-prompt-substitution", Level: LevelMedium, Env: []string{"PS0", "PS1", "PS2", "PS4"},
			Value:   []string{"*$([!(]*", "*$(", "*`*"}, // $(( )) is arithmetic
			Message: "A prompt with a command substitution, which bash runs every time it shows the prompt (PS4: at every command traced); the command is judged too."},
		{ID: "env-interpreter-startup", Level: LevelMedium, Env: []string{"PERL5OPT", "RUBYOPT", "PYTHONSTARTUP"},
			Message: "Makes every perl or ruby program (PERL5OPT, RUBYOPT) or interactive python (PYTHONSTARTUP) load a module or file first: code berth cannot see."},
		{ID: "env-node-require", Level: LevelMedium, Env: []string{"NODE_OPTIONS"},
			Value:   []string{"*--require*", "*-r *", "*-r=*", "*--import*", "*--loader*", "*--experimental-loader*"},
			Message: "Makes every node program load a module first (--require, --import, --loader): code berth cannot see."},
		{ID: "env-java-agent", Level: LevelMedium, Env: []string{"JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"},
			Value:   []string{"*-javaagent*", "*-agentpath*", "*-agentlib*"},
			Message: "Makes every Java program load an agent first (-javaagent, -agentpath): code berth cannot see."},
	}
}
