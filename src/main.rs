fn main() -> std::process::ExitCode {
    jaildaemon::run(std::env::args_os())
}
