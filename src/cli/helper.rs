//! mount(8) helper mode: `mount -t fuse.llmfs STORE DIR -o OPTS` and fstab
//! lines of type `fuse.llmfs` run `/sbin/mount.fuse.llmfs STORE DIR -o OPTS`
//! (a symlink to the llmfs binary), which mounts exactly as
//! `llmfs mount --store STORE DIR -o OPTS` does and returns once the mount is
//! live.
//!
//! Without that symlink, mount(8) falls back to fuse3's `mount.fuse3`, which
//! runs `llmfs STORE DIR -o OPTS` through the shell; that form is accepted
//! too when STORE contains a '/', which no subcommand name does.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::error::CliError;
use super::mount::{self, MountArgs};

/// Program names that select helper mode.
const HELPER_NAMES: [&str; 2] = ["mount.fuse.llmfs", "mount.llmfs"];

/// mount(8) exit codes (see its man page, "EXIT STATUS").
const EXIT_USAGE: u8 = 1;
const EXIT_MOUNT_FAILED: u8 = 32;

/// If `argv` asks for helper mode, runs it and returns the exit code.
pub fn dispatch(argv: &[OsString]) -> Option<ExitCode> {
    let prog = argv.first()?;
    let name = Path::new(prog).file_name()?.to_str()?;
    if HELPER_NAMES.contains(&name) {
        return Some(run(name, &argv[1..]));
    }
    let first = argv.get(1)?.as_bytes();
    if argv.len() >= 3 && !first.starts_with(b"-") && first.contains(&b'/') {
        return Some(run("llmfs", &argv[1..]));
    }
    None
}

/// Parsed helper command line.
#[derive(Debug, PartialEq)]
struct HelperArgs {
    store: PathBuf,
    mountpoint: PathBuf,
    options: Vec<String>,
    verbose: u8,
    fake: bool,
}

enum Parsed {
    Run(HelperArgs),
    Help,
}

fn usage(prog: &str) -> String {
    format!(
        "usage: {prog} STORE MOUNTPOINT [-o OPTIONS] [-t fuse.llmfs] [-s] [-n] [-f] [-v]\n\
         \n\
         mount(8) helper for llmfs: mounts the store directory STORE on MOUNTPOINT\n\
         like `llmfs mount --store STORE MOUNTPOINT -o OPTIONS` and returns once the\n\
         mount is live. -f checks everything without mounting (mount -f, \"fake\"),\n\
         -v logs more to STORE/llmfs.log, -s and -n are ignored. See llmfs-mount(1)\n\
         for the options."
    )
}

fn value<'a>(
    flag: &str,
    rest: &str,
    it: &mut impl Iterator<Item = &'a OsString>,
) -> Result<String, CliError> {
    if !rest.is_empty() {
        return Ok(rest.to_string());
    }
    let v = it
        .next()
        .ok_or_else(|| CliError::usage(format!("option {flag} needs a value")))?;
    v.to_str()
        .map(str::to_string)
        .ok_or_else(|| CliError::usage(format!("the value of {flag} is not valid UTF-8")))
}

fn parse(args: &[OsString]) -> Result<Parsed, CliError> {
    let mut positional: Vec<&OsStr> = Vec::new();
    let mut options = Vec::new();
    let mut verbose = 0u8;
    let mut fake = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            positional.extend(it.by_ref().map(OsString::as_os_str));
            break;
        }
        if bytes == b"-h" || bytes == b"--help" {
            return Ok(Parsed::Help);
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            positional.push(arg);
            continue;
        }
        let s = arg
            .to_str()
            .ok_or_else(|| CliError::usage(format!("unknown option {}", arg.to_string_lossy())))?;
        // Short flags, possibly grouped (-nv), the last one possibly taking
        // a value (-o OPTS, -oOPTS).
        for (i, c) in s[1..].char_indices() {
            let rest = &s[1 + i + c.len_utf8()..];
            match c {
                'o' => {
                    options.push(value("-o", rest, &mut it)?);
                    break;
                }
                't' => {
                    let t = value("-t", rest, &mut it)?;
                    if !matches!(t.as_str(), "fuse.llmfs" | "fuseblk.llmfs" | "llmfs") {
                        return Err(CliError::usage(format!(
                            "filesystem type '{t}' is not fuse.llmfs"
                        )));
                    }
                    break;
                }
                'N' => {
                    return Err(CliError::usage(
                        "-N (mounting in another mount namespace) is not supported",
                    ));
                }
                'f' => fake = true,
                'v' => verbose = verbose.saturating_add(1),
                's' | 'n' => {}
                _ => return Err(CliError::usage(format!("unknown option -{c}"))),
            }
        }
    }
    match positional.as_slice() {
        [store, mountpoint] => {
            if store.is_empty() {
                return Err(CliError::usage("the store (source) is empty"));
            }
            Ok(Parsed::Run(HelperArgs {
                store: PathBuf::from(store),
                mountpoint: PathBuf::from(mountpoint),
                options,
                verbose,
                fake,
            }))
        }
        [] | [_] => Err(CliError::usage("expected STORE and MOUNTPOINT")),
        _ => Err(CliError::usage(format!(
            "unexpected argument '{}'",
            positional[2].to_string_lossy()
        ))),
    }
}

fn run(prog: &str, args: &[OsString]) -> ExitCode {
    let h = match parse(args) {
        Ok(Parsed::Run(h)) => h,
        Ok(Parsed::Help) => {
            println!("{}", usage(prog));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{prog}: {e}\n{}", usage(prog));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let margs = MountArgs::for_helper(h.store, h.mountpoint, h.options);
    let result = if h.fake {
        mount::check(&margs).map(|()| ExitCode::SUCCESS)
    } else {
        mount::run(margs, h.verbose)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(EXIT_MOUNT_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn run_args(a: &[&str]) -> HelperArgs {
        match parse(&args(a)).unwrap() {
            Parsed::Run(h) => h,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn parses_the_mount_helper_convention() {
        let h = run_args(&["/s", "/m", "-o", "rw,noatime", "-n", "-s", "-v"]);
        assert_eq!(
            h,
            HelperArgs {
                store: "/s".into(),
                mountpoint: "/m".into(),
                options: vec!["rw,noatime".into()],
                verbose: 1,
                fake: false,
            }
        );
        let h = run_args(&["-fnv", "-orw", "/s", "-t", "fuse.llmfs", "/m", "-o", "ro"]);
        assert!(h.fake);
        assert_eq!(h.verbose, 1);
        assert_eq!(h.options, vec!["rw".to_string(), "ro".to_string()]);
        assert_eq!(
            run_args(&["/s", "/m", "-o", ""]).options,
            vec![String::new()]
        );
    }

    #[test]
    fn rejects_bad_helper_command_lines() {
        for (a, want) in [
            (&["/s"][..], "expected STORE"),
            (&["/s", "/m", "/x"][..], "unexpected argument"),
            (&["/s", "/m", "-o"][..], "needs a value"),
            (&["/s", "/m", "-t", "ext4"][..], "not fuse.llmfs"),
            (&["/s", "/m", "-N", "/proc/1/ns/mnt"][..], "not supported"),
            (&["/s", "/m", "-x"][..], "unknown option -x"),
            (&["", "/m"][..], "empty"),
        ] {
            let e = match parse(&args(a)) {
                Err(e) => e,
                Ok(_) => panic!("{a:?} accepted"),
            };
            assert!(e.to_string().contains(want), "{a:?}: {e}");
        }
    }

    #[test]
    fn dispatches_on_program_name_and_fuse3_form() {
        // Only the decision is tested here: a non-helper command line.
        assert!(dispatch(&args(&["llmfs", "mount", "/m"])).is_none());
        assert!(dispatch(&args(&["llmfs", "--help"])).is_none());
        assert!(dispatch(&args(&["/usr/bin/llmfs"])).is_none());
    }
}
