// The `kvq` binary's subcommands. Each subcommand lives in the library that
// owns it and registers itself at static-initialisation time:
//
//   ABSL_FLAG(int, steps, 64, "Number of new tokens to generate.");
//   static const kvq::cli::CommandRegistrar kGenerate({
//       .path = "generate",
//       .summary = "Generate text from a prompt with a local model.",
//       .flags = {"model", "prompt", "steps", "kv"},
//       .run = [](const std::vector<std::string>& args) { ... return 0; }});
//
// `kvq --version` runs the `version` command. The dispatcher (cli/main.cc) matches the
// longest registered path ("bench kernels" before "bench"), prints help for `--help`,
// rejects flags the command does not list, parses the flags with Abseil, and calls `run`
// with the remaining positional arguments. The library holding a registrar must be
// `alwayslink = 1`.
#ifndef KVQ_CLI_COMMAND_H_
#define KVQ_CLI_COMMAND_H_

#include <functional>
#include <string>
#include <vector>

namespace kvq::cli {

struct Command {
  // Space-separated words after `kvq`, e.g. "serve store".
  std::string path;
  // One line for listings; `description` (optional) follows it in --help.
  std::string summary;
  std::string description;
  // Names of the absl flags this command reads (without dashes).
  std::vector<std::string> flags;
  // Returns the process exit code. `args` are the positional arguments.
  std::function<int(const std::vector<std::string>& args)> run;
};

class CommandRegistrar {
 public:
  explicit CommandRegistrar(Command command);
};

const std::vector<Command>& RegisteredCommands();

// A flag every command accepts (e.g. --kernel_variant), registered like a
// command by the library that owns it. After the flags are parsed and before
// the command runs, `apply` is called; a non-empty result is an error message
// (the command does not run, exit status 2).
struct GlobalFlag {
  std::string name;  // an absl flag, without dashes
  std::function<std::string()> apply;
};

class GlobalFlagRegistrar {
 public:
  explicit GlobalFlagRegistrar(GlobalFlag flag);
};

// Entry point used by main(): dispatches argv to a registered command.
int RunMain(int argc, char** argv);

}  // namespace kvq::cli

#endif  // KVQ_CLI_COMMAND_H_
