#include "cli/command.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace kvq::cli {
namespace {

std::vector<Command>& Registry() {
  static auto* registry = new std::vector<Command>();
  return *registry;
}

std::vector<GlobalFlag>& GlobalFlags() {
  static auto* flags = new std::vector<GlobalFlag>();
  return *flags;
}

bool IsGlobalFlag(const std::string& name) {
  return std::any_of(GlobalFlags().begin(), GlobalFlags().end(),
                     [&](const GlobalFlag& f) { return f.name == name; });
}

std::vector<std::string> Words(const std::string& path) {
  return absl::StrSplit(path, ' ', absl::SkipEmpty());
}

void PrintCommandList(const std::string& prefix) {
  std::vector<const Command*> shown;
  for (const Command& c : Registry()) {
    if (prefix.empty() || absl::StartsWith(c.path, prefix + " ")) shown.push_back(&c);
  }
  std::sort(shown.begin(), shown.end(),
            [](const Command* a, const Command* b) { return a->path < b->path; });
  size_t width = 0;
  for (const Command* c : shown) width = std::max(width, c->path.size());
  for (const Command* c : shown) {
    std::printf("  kvq %-*s  %s\n", static_cast<int>(width), c->path.c_str(),
                c->summary.c_str());
  }
}

void PrintTopHelp() {
  std::printf(
      "kvq: disaggregated LLM serving with a 2-bit (KIVI) KV cache.\n\n"
      "Usage: kvq COMMAND [SUBCOMMAND] [--flags] [args]\n\n"
      "Commands:\n");
  PrintCommandList("");
  std::printf(
      "\nRun `kvq COMMAND --help` for a command's flags. Machine-readable "
      "output (--json) is JSON Lines.\n");
}

void PrintCommandHelp(const Command& c) {
  std::printf("Usage: kvq %s [flags]\n\n%s\n", c.path.c_str(), c.summary.c_str());
  if (!c.description.empty()) std::printf("\n%s\n", c.description.c_str());
  std::vector<std::string> names = c.flags;
  for (const GlobalFlag& g : GlobalFlags()) names.push_back(g.name);
  if (names.empty()) return;
  std::printf("\nFlags:\n");
  for (const std::string& name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      std::printf("  --%s  (unregistered flag: a bug in kvq)\n", name.c_str());
      continue;
    }
    std::printf("  --%s  %s\n      default: %s\n", name.c_str(), flag->Help().c_str(),
                flag->DefaultValue().empty() ? "\"\"" : flag->DefaultValue().c_str());
  }
}

// The flag name in "--name=value", "--name", "-name", "--noname".
std::string FlagName(absl::string_view arg) {
  while (absl::StartsWith(arg, "-")) arg.remove_prefix(1);
  std::string name(arg.substr(0, arg.find('=')));
  return name;
}

}  // namespace

CommandRegistrar::CommandRegistrar(Command command) {
  Registry().push_back(std::move(command));
}

const std::vector<Command>& RegisteredCommands() { return Registry(); }

GlobalFlagRegistrar::GlobalFlagRegistrar(GlobalFlag flag) {
  GlobalFlags().push_back(std::move(flag));
}

int RunMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Leading words that are not flags name the command.
  size_t n_words = 0;
  while (n_words < args.size() && !absl::StartsWith(args[n_words], "-")) ++n_words;

  // `kvq --version` is `kvq version`.
  if (n_words == 0 && !args.empty() && args[0] == "--version") {
    args[0] = "version";
    n_words = 1;
  }
  const Command* best = nullptr;
  size_t best_len = 0;
  for (const Command& c : Registry()) {
    std::vector<std::string> w = Words(c.path);
    if (w.size() > n_words || w.size() <= best_len) continue;
    if (std::equal(w.begin(), w.end(), args.begin())) {
      best = &c;
      best_len = w.size();
    }
  }
  const bool wants_help = std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a == "--help" || a == "-h" || a == "-help" || a == "--helpfull";
  });

  if (best == nullptr) {
    std::string prefix = n_words > 0 ? args[0] : "";
    bool is_group = false;
    for (const Command& c : Registry()) {
      if (!prefix.empty() && absl::StartsWith(c.path, prefix + " ")) is_group = true;
    }
    if (n_words == 0) {
      PrintTopHelp();
      return wants_help ? 0 : 2;
    }
    if (is_group) {
      if (n_words > 1)
        std::fprintf(stderr, "kvq: unknown command `%s %s`\n\n", prefix.c_str(),
                     args[1].c_str());
      std::printf("Commands under `kvq %s`:\n", prefix.c_str());
      PrintCommandList(prefix);
      return wants_help && n_words == 1 ? 0 : 2;
    }
    std::fprintf(stderr, "kvq: unknown command `%s`. Run `kvq --help`.\n",
                 args[0].c_str());
    return 2;
  }
  if (wants_help) {
    PrintCommandHelp(*best);
    return 0;
  }

  // Only the command's own flags are accepted.
  for (size_t i = best_len; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    if (!absl::StartsWith(a, "-")) continue;
    std::string name = FlagName(a);
    bool known =
        std::find(best->flags.begin(), best->flags.end(), name) != best->flags.end() ||
        IsGlobalFlag(name);
    if (!known && absl::StartsWith(name, "no")) {
      known = std::find(best->flags.begin(), best->flags.end(), name.substr(2)) !=
              best->flags.end();
    }
    if (!known) {
      std::fprintf(stderr, "kvq %s: unknown flag --%s. Run `kvq %s --help`.\n",
                   best->path.c_str(), name.c_str(), best->path.c_str());
      return 2;
    }
  }

  std::vector<char*> parse_argv;
  std::string program = "kvq " + best->path;
  parse_argv.push_back(program.data());
  for (size_t i = best_len; i < args.size(); ++i) parse_argv.push_back(args[i].data());
  std::vector<char*> rest =
      absl::ParseCommandLine(static_cast<int>(parse_argv.size()), parse_argv.data());
  std::vector<std::string> positional(rest.begin() + 1, rest.end());
  for (const GlobalFlag& g : GlobalFlags()) {
    if (std::string error = g.apply(); !error.empty()) {
      std::fprintf(stderr, "kvq %s: --%s: %s\n", best->path.c_str(), g.name.c_str(),
                   error.c_str());
      return 2;
    }
  }
  return best->run(positional);
}

}  // namespace kvq::cli
