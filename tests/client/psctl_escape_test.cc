// psctl's terminal safety (issue 13): text that comes from psd (job names, messages, history)
// is printed with control characters escaped, so it cannot drive the terminal.
#include "client/psctl_format.h"

#include <gtest/gtest.h>

namespace ps {
namespace {

TEST(PsctlEscape, ControlCharactersAndBadBytesAreEscaped) {
  EXPECT_EQ(EscapeControl("plain name-1, step_s=0.2"), "plain name-1, step_s=0.2");
  EXPECT_EQ(EscapeControl("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  EXPECT_EQ(EscapeControl("a\rb\nc\td\x7f"), "a\\x0db\\x0ac\\x09d\\x7f");
  EXPECT_EQ(EscapeControl(std::string("nul\0x", 5)), "nul\\x00x");
  // C1 CSI (U+009B) encoded in UTF-8; a lone Latin-1 byte; a truncated sequence.
  EXPECT_EQ(EscapeControl("\xc2\x9b"
                          "2J"),
            "\\xc2\\x9b2J");
  EXPECT_EQ(EscapeControl("caf\xe9"), "caf\\xe9");
  EXPECT_EQ(EscapeControl("\xe2\x82"), "\\xe2\\x82");
  // Printable UTF-8 passes: é, €, 😀.
  EXPECT_EQ(EscapeControl("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(PsctlEscape, TablesEscapeEveryCell) {
  proxsparse::v1::Job j;
  j.set_id("j000001");
  j.set_name("\x1b]0;pwned\x07");
  j.set_message("line one\nline two");
  std::string t = JobsTable({j});
  EXPECT_EQ(t.find('\x1b'), std::string::npos) << t;
  EXPECT_EQ(t.find('\x07'), std::string::npos) << t;
  EXPECT_NE(t.find("\\x1b]0;pwned\\x07"), std::string::npos) << t;
  EXPECT_NE(t.find("line one\\x0aline two"), std::string::npos) << t;
  t = JobDetails(j);
  EXPECT_EQ(t.find('\x1b'), std::string::npos) << t;
}

}  // namespace
}  // namespace ps
