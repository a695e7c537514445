// The `kvq` binary: every service, benchmark and tool is a subcommand
// registered by the library that owns it (see cli/command.h).
#include "cli/command.h"

int main(int argc, char** argv) { return kvq::cli::RunMain(argc, argv); }
