// The web explorer's files (web/), embedded into the binary at build time by
// cmake/embed_web.cmake so `glassbox serve` needs no files on disk and no internet.
#pragma once

#include <string_view>

namespace glassbox {

struct WebAsset {
  std::string_view path;          // "/index.html", "/app.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// The asset served at `path` ("/" is "/index.html"), or nullptr.
const WebAsset* find_web_asset(std::string_view path);

}  // namespace glassbox
