// Thin RAII wrappers over the SQLite C API for the feature database: a connection and a prepared
// statement. Every failure becomes Error(kFormat) (or kIo for open) naming the database file, so
// callers never see SQLite result codes. No schema knowledge here.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace glassbox::sqlite {

class Db {
 public:
  // flags: SQLITE_OPEN_* (FULLMUTEX is added so one connection may be shared between threads).
  Db(const std::string& path, int flags);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }
  // Runs one or more statements without results.
  void exec(const std::string& sql) const;
  // Throws Error(kFormat) "<path>: <what>: <sqlite message>".
  [[noreturn]] void fail(const std::string& what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Stmt {
 public:
  Stmt(const Db& db, const std::string& sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binding is 1-based, as in SQLite.
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind(int i, const std::string& v);
  Stmt& bind_blob(int i, const void* data, size_t bytes);
  template <typename T>
  Stmt& bind_vec(int i, const std::vector<T>& v) {
    return bind_blob(i, v.data(), v.size() * sizeof(T));
  }
  // true while a row is available.
  bool step();
  // step() expecting no row; then reset for reuse.
  void run();
  void reset();

  int64_t i64(int col) const;
  double f64(int col) const;
  std::string text(int col) const;
  bool is_null(int col) const;
  // Blob as a vector of T (native little-endian); Error(kFormat) if the size is not a multiple.
  template <typename T>
  std::vector<T> vec(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    const size_t bytes = static_cast<size_t>(sqlite3_column_bytes(stmt_, col));
    if (bytes % sizeof(T) != 0) bad_blob(col);
    std::vector<T> out(bytes / sizeof(T));
    if (bytes != 0) std::memcpy(out.data(), p, bytes);
    return out;
  }

 private:
  [[noreturn]] void bad_blob(int col) const;
  const Db& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// RAII transaction: BEGIN IMMEDIATE on construction, ROLLBACK unless commit() was called.
class Transaction {
 public:
  explicit Transaction(const Db& db);
  ~Transaction();
  void commit();

 private:
  const Db& db_;
  bool done_ = false;
};

}  // namespace glassbox::sqlite
