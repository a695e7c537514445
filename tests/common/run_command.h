// Runs a shell command line for the tests that drive the kvq binary or a
// test tool as a user does: its stdout captured (stderr goes where the line
// sends it, e.g. "2>&1" or "2>/path"), its exit status.
//
//   const CommandResult r = RunCommand(kvq + " version 2>&1");
//   EXPECT_EQ(r.exit_code, 0) << r.out;
#ifndef KVQ_TESTS_COMMON_RUN_COMMAND_H_
#define KVQ_TESTS_COMMON_RUN_COMMAND_H_

#include <string>

namespace kvq::testing {

struct CommandResult {
  int exit_code = -1;  // the command's; -1 if it could not run or was killed
  std::string out;     // everything it wrote to stdout
};

CommandResult RunCommand(const std::string& command_line);

}  // namespace kvq::testing

#endif  // KVQ_TESTS_COMMON_RUN_COMMAND_H_
