use std::process::ExitCode;

fn main() -> ExitCode {
    llmfs::cli::main()
}
