// SHA-256 against FIPS 180-4 example digests and Python's hashlib (values computed there).
#include "core/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace glassbox {
namespace {

std::string sha(const std::string& s, size_t piece = 0) {
  Sha256 h;
  if (piece == 0) {
    h.update(s.data(), s.size());
  } else {  // fed in pieces, across block boundaries
    for (size_t i = 0; i < s.size(); i += piece)
      h.update(s.data() + i, std::min(piece, s.size() - i));
  }
  return h.hex_digest();
}

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha(two_blocks), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  EXPECT_EQ(sha(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  for (size_t piece : {1, 7, 63, 64, 65, 1000}) {
    EXPECT_EQ(sha(two_blocks + million.substr(0, 200), piece),
              sha(two_blocks + million.substr(0, 200)));
  }
}

}  // namespace
}  // namespace glassbox
