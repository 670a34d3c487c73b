// .npz archives (numpy.savez / savez_compressed): a bounds-checked zip reader whose members are
// decoded with io/npy.h. Owns only the zip container; it does not write archives.
//
// Zip layout read (PKWARE APPNOTE 6.3, the subset Python's zipfile writes):
//   local file headers "PK\3\4" + data ... | central directory "PK\1\2" entries |
//   [zip64 end record "PK\6\6" + locator "PK\6\7"] | end of central directory "PK\5\6" + comment
// The end record is searched for in the last 65,557 bytes (22 + a u16 comment). Each central entry
// gives method, flags, crc32, compressed and uncompressed sizes and the local header offset; the
// zip64 extra field (id 0x0001) replaces sizes/offset that read 0xFFFFFFFF (numpy opens every
// member with force_zip64=True, which puts zip64 fields in the *local* headers; the central one
// has them only for large members). Member data starts after the local header's name and extra.
// Checks (Error(kFormat) naming the archive and the member/field): every offset and length lies
// inside the file; counts are bounded by the bytes that hold them; methods are 0 (stored) or
// 8 (deflate, raw, via zlib); the inflated size equals the declared size, which is capped at
// 2^40 and, for deflate, at 1032 x the compressed size (deflate's maximum ratio); the crc32
// matches; names are unique; encrypted members (flag bit 0) are kUnsupported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace glassbox {

struct ZipMember {
  std::string name;
  uint16_t method = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t data_offset = 0;  // absolute offset of the member's (compressed) bytes
};

// Lists the members of a zip image (validated as above, except the data itself).
std::vector<ZipMember> zip_members(const uint8_t* data, size_t size, const std::string& name);
// The uncompressed bytes of one member (crc32 checked).
std::vector<uint8_t> zip_extract(const uint8_t* data, size_t size, const ZipMember& member,
                                 const std::string& name);

// Reads every array of an .npz image: member "X.npy" becomes key "X" (members not ending in .npy
// keep their name). Throws Error(kFormat) as above, or as decode_npy for a bad member (the
// message names the member).
std::map<std::string, Tensor> decode_npz(const uint8_t* data, size_t size, const std::string& name);
// Same from a file; Error(kIo) when it cannot be opened.
std::map<std::string, Tensor> read_npz(const std::string& path);

}  // namespace glassbox
