// The files of the dashboard page, embedded in the binary at build time
// (web/embed.cmake): the page, its script and style, and the charting
// library from npm. Immutable static data; thread-safe.
#ifndef CFREC_WEB_ASSETS_H_
#define CFREC_WEB_ASSETS_H_

#include <span>
#include <string_view>

namespace cfrec::web {

struct Asset {
  std::string_view path;  // where GET serves it: "/", "/ui/app.js", ...
  std::string_view content_type;
  std::string_view body;
};

// Every asset; "/" is the page.
std::span<const Asset> Assets();

}  // namespace cfrec::web

#endif  // CFREC_WEB_ASSETS_H_
