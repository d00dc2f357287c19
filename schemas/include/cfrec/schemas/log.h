// Minimal structured logging to stderr: one line per call,
//   2026-11-23T15:04:05.123Z INFO ingest: message
// Thread-safe (a line is written with one fwrite). The level threshold is
// read from the CFREC_LOG environment variable once (debug|info|warn|error;
// default info).
#ifndef CFREC_SCHEMAS_LOG_H_
#define CFREC_SCHEMAS_LOG_H_

#include <string_view>

namespace cfrec {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

bool LogEnabled(LogLevel level);
void Log(LogLevel level, std::string_view component, std::string_view message);

inline void LogInfo(std::string_view c, std::string_view m) {
  Log(LogLevel::kInfo, c, m);
}
inline void LogWarn(std::string_view c, std::string_view m) {
  Log(LogLevel::kWarn, c, m);
}
inline void LogError(std::string_view c, std::string_view m) {
  Log(LogLevel::kError, c, m);
}

}  // namespace cfrec

#endif  // CFREC_SCHEMAS_LOG_H_
