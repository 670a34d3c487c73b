#include "io/npz.h"

#include <zlib.h>

#include <cstring>
#include <set>

#include "io/mapped_file.h"
#include "io/npy.h"

namespace glassbox {
namespace {

constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint64_t kMaxMember = uint64_t(1) << 40;

[[noreturn]] void bad(const std::string& name, const std::string& what) {
  throw Error(ErrorCode::kFormat, name + ": " + what);
}

// Bounds-checked little-endian reads at absolute offsets.
struct Bytes {
  const uint8_t* data;
  size_t size;
  const std::string& name;

  void need(uint64_t off, uint64_t n, const char* field) const {
    if (off > size || n > size - off) {
      bad(name, std::string(field) + " at byte " + std::to_string(off) + " (" + std::to_string(n) +
                    " bytes) runs past the end of the archive (" + std::to_string(size) +
                    " bytes)");
    }
  }
  template <class T>
  T get(uint64_t off, const char* field) const {
    need(off, sizeof(T), field);
    T v;
    std::memcpy(&v, data + off, sizeof(T));
    return v;
  }
};

// Applies a zip64 extra field (id 1) to the values that overflowed, in the APPNOTE order.
void apply_zip64(const Bytes& b, uint64_t extra, uint64_t extra_len, uint64_t* size,
                 uint64_t* csize, uint64_t* offset, const std::string& member) {
  uint64_t p = extra, end = extra + extra_len;
  while (p + 4 <= end) {
    const uint16_t id = b.get<uint16_t>(p, "extra field id");
    const uint16_t len = b.get<uint16_t>(p + 2, "extra field length");
    if (p + 4 + len > end) bad(b.name, "member '" + member + "': extra field overruns its block");
    if (id == 1) {
      uint64_t q = p + 4, qend = p + 4 + len;
      for (uint64_t* v : {size, csize, offset}) {
        if (v == nullptr || *v != 0xFFFFFFFFu) continue;
        if (q + 8 > qend) bad(b.name, "member '" + member + "': zip64 extra field too short");
        *v = b.get<uint64_t>(q, "zip64 extra value");
        q += 8;
      }
      return;
    }
    p += 4 + len;
  }
}

}  // namespace

std::vector<ZipMember> zip_members(const uint8_t* data, size_t size, const std::string& name) {
  const Bytes b{data, size, name};
  if (size < 22) bad(name, "too small for a zip archive (" + std::to_string(size) + " bytes)");
  // End of central directory: the last signature whose comment length fits the file.
  uint64_t eocd = UINT64_MAX;
  const uint64_t lowest = size >= 22 + 65535 ? size - 22 - 65535 : 0;
  for (uint64_t p = size - 22 + 1; p-- > lowest;) {
    if (b.get<uint32_t>(p, "end record") == kEocdSig &&
        p + 22 + b.get<uint16_t>(p + 20, "comment length") == size) {
      eocd = p;
      break;
    }
  }
  if (eocd == UINT64_MAX) bad(name, "no zip end-of-central-directory record (not a zip/.npz?)");
  uint64_t count = b.get<uint16_t>(eocd + 10, "entry count");
  uint64_t cd_size = b.get<uint32_t>(eocd + 12, "central directory size");
  uint64_t cd_off = b.get<uint32_t>(eocd + 16, "central directory offset");
  if (b.get<uint16_t>(eocd + 4, "disk number") != 0 ||
      b.get<uint16_t>(eocd + 6, "central directory disk") != 0) {
    throw Error(ErrorCode::kUnsupported, name + ": multi-disk zip archives are not supported");
  }
  if ((count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) && eocd >= 20 &&
      b.get<uint32_t>(eocd - 20, "zip64 locator") == kZip64LocatorSig) {
    const uint64_t z = b.get<uint64_t>(eocd - 20 + 8, "zip64 end record offset");
    if (b.get<uint32_t>(z, "zip64 end record") != kZip64EocdSig) {
      bad(name, "zip64 locator points at no zip64 end record");
    }
    count = b.get<uint64_t>(z + 32, "zip64 entry count");
    cd_size = b.get<uint64_t>(z + 40, "zip64 central directory size");
    cd_off = b.get<uint64_t>(z + 48, "zip64 central directory offset");
  }
  b.need(cd_off, cd_size, "central directory");
  if (count > cd_size / 46) {
    bad(name, "central directory of " + std::to_string(cd_size) + " bytes cannot hold " +
                  std::to_string(count) + " entries");
  }
  std::vector<ZipMember> members;
  std::set<std::string> names;
  uint64_t p = cd_off;
  for (uint64_t i = 0; i < count; ++i) {
    if (p + 46 > cd_off + cd_size)
      bad(name, "central directory entry " + std::to_string(i) + " runs past the directory");
    if (b.get<uint32_t>(p, "central entry") != kCentralSig) {
      bad(name, "bad signature of central directory entry " + std::to_string(i));
    }
    ZipMember m;
    const uint16_t flags = b.get<uint16_t>(p + 8, "flags");
    m.method = b.get<uint16_t>(p + 10, "method");
    m.crc32 = b.get<uint32_t>(p + 16, "crc32");
    m.compressed_size = b.get<uint32_t>(p + 20, "compressed size");
    m.size = b.get<uint32_t>(p + 24, "uncompressed size");
    const uint16_t name_len = b.get<uint16_t>(p + 28, "name length");
    const uint16_t extra_len = b.get<uint16_t>(p + 30, "extra length");
    const uint16_t comment_len = b.get<uint16_t>(p + 32, "comment length");
    uint64_t local = b.get<uint32_t>(p + 42, "local header offset");
    const uint64_t next = p + 46 + name_len + extra_len + comment_len;
    if (next > cd_off + cd_size)
      bad(name, "central directory entry " + std::to_string(i) + " runs past the directory");
    b.need(p + 46, name_len, "member name");
    m.name.assign(reinterpret_cast<const char*>(data + p + 46), name_len);
    apply_zip64(b, p + 46 + name_len, extra_len, &m.size, &m.compressed_size, &local, m.name);
    if (flags & 1) {
      throw Error(ErrorCode::kUnsupported,
                  name + ": member '" + m.name + "' is encrypted, which is not supported");
    }
    if (m.method != 0 && m.method != 8) {
      throw Error(ErrorCode::kUnsupported,
                  name + ": member '" + m.name + "' uses compression method " +
                      std::to_string(m.method) + " (only stored (0) and deflate (8) are read)");
    }
    if (!names.insert(m.name).second) bad(name, "duplicate member '" + m.name + "'");
    // Local header: its own name/extra lengths place the data.
    if (b.get<uint32_t>(local, "local header") != kLocalSig) {
      bad(name,
          "member '" + m.name + "': bad local header signature at byte " + std::to_string(local));
    }
    const uint16_t lname = b.get<uint16_t>(local + 26, "local name length");
    const uint16_t lextra = b.get<uint16_t>(local + 28, "local extra length");
    m.data_offset = local + 30 + lname + lextra;
    if (m.method == 0 && m.compressed_size != m.size) {
      bad(name, "member '" + m.name + "' is stored but its sizes differ (" +
                    std::to_string(m.compressed_size) + " vs " + std::to_string(m.size) + ")");
    }
    if (m.size > kMaxMember || (m.method == 8 && m.size > 1032 * m.compressed_size + 1032)) {
      bad(name, "member '" + m.name + "' declares an implausible size " + std::to_string(m.size));
    }
    b.need(m.data_offset, m.compressed_size, ("member '" + m.name + "' data").c_str());
    members.push_back(std::move(m));
    p = next;
  }
  return members;
}

std::vector<uint8_t> zip_extract(const uint8_t* data, size_t size, const ZipMember& m,
                                 const std::string& name) {
  const Bytes b{data, size, name};
  b.need(m.data_offset, m.compressed_size, "member data");
  std::vector<uint8_t> out(static_cast<size_t>(m.size));
  const uint8_t* src = data + m.data_offset;
  if (m.method == 0) {
    if (m.size) std::memcpy(out.data(), src, out.size());
  } else {
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
      throw Error(ErrorCode::kIo, name + ": zlib inflateInit2 failed");
    }
    uint64_t in_left = m.compressed_size, out_done = 0;
    const uint8_t* in = src;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      const uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
      const uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(m.size - out_done, 1u << 30));
      zs.next_in = const_cast<Bytef*>(in);
      zs.avail_in = in_chunk;
      zs.next_out = out.data() + out_done;
      zs.avail_out = out_chunk;
      rc = inflate(&zs, Z_NO_FLUSH);
      const uint64_t used_in = in_chunk - zs.avail_in, made = out_chunk - zs.avail_out;
      in += used_in;
      in_left -= used_in;
      out_done += made;
      if (rc == Z_STREAM_END) break;
      if (rc != Z_OK || (used_in == 0 && made == 0)) {
        inflateEnd(&zs);
        bad(name, "member '" + m.name + "': corrupt deflate data" +
                      (out_done == m.size ? " (more output than its declared size)" : ""));
      }
    }
    inflateEnd(&zs);
    if (out_done != m.size) {
      bad(name, "member '" + m.name + "' inflates to " + std::to_string(out_done) +
                    " bytes, declared " + std::to_string(m.size));
    }
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t off = 0; off < out.size(); off += 1u << 30) {
    const uInt n = static_cast<uInt>(std::min<uint64_t>(out.size() - off, 1u << 30));
    crc = crc32(crc, out.data() + off, n);
  }
  if (static_cast<uint32_t>(crc) != m.crc32) bad(name, "member '" + m.name + "': crc32 mismatch");
  return out;
}

std::map<std::string, Tensor> decode_npz(const uint8_t* data, size_t size,
                                         const std::string& name) {
  std::map<std::string, Tensor> arrays;
  for (const ZipMember& m : zip_members(data, size, name)) {
    const std::vector<uint8_t> bytes = zip_extract(data, size, m, name);
    std::string key = m.name;
    if (key.size() > 4 && key.ends_with(".npy")) key.resize(key.size() - 4);
    if (arrays.count(key)) bad(name, "two members hold array '" + key + "'");
    arrays[key] = decode_npy(bytes.data(), bytes.size(), name + "/" + m.name);
  }
  return arrays;
}

std::map<std::string, Tensor> read_npz(const std::string& path) {
  const auto file = MappedFile::open(path);
  return decode_npz(file->data(), file->size(), path);
}

}  // namespace glassbox
