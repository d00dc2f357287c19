// MetricsRegistry: counters, gauges and histograms with labels, exposed in
// the Prometheus text format 0.0.4.
//
// Thread-safety: every method of MetricsRegistry, Counter, Gauge and
// Histogram may be called from any thread. Updates on the hot path are
// relaxed atomics; looking up a labelled child takes a shared lock on a hash
// map (callers on hot paths may keep the returned pointer).
//
// Ownership: the registry owns every metric it returns; returned pointers
// stay valid for the registry's lifetime. Callback metrics call their
// function from Expose(), on the scraping thread: the function and whatever
// it captures must stay valid while Expose() may run.
#ifndef CFREC_SERVER_METRICS_H_
#define CFREC_SERVER_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cfrec::server {

// Label values in the order of the family's label names.
using LabelValues = std::vector<std::string>;

class Counter {
 public:
  void Increment(uint64_t by = 1) {
    value_.fetch_add(by, std::memory_order_relaxed);
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative histogram over fixed upper bounds (Prometheus "le").
class Histogram {
 public:
  // `bounds` must be strictly increasing; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Non-cumulative count of bucket i (i == bounds().size() is +Inf).
  uint64_t bucket_count(size_t i) const {
    return counts_[i].load(std::memory_order_relaxed);
  }
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, 100 us .. 10 s; suited to request latency.
std::vector<double> DefaultLatencyBuckets();

// The values of one family at one moment (MetricsRegistry::Collect), for
// views of the registry other than the text exposition.
struct MetricFamilyValues {
  struct Sample {
    LabelValues label_values;  // in the order of label_names
    double value = 0;          // counters and gauges
    // Histograms: cumulative count at each of `bounds`, then at +Inf.
    std::vector<uint64_t> cumulative;
    double sum = 0;  // histograms
  };
  std::string name;
  std::string_view type;  // "counter", "gauge" or "histogram"
  std::string help;
  std::vector<std::string> label_names;
  std::vector<double> bounds;   // histograms only
  std::vector<Sample> samples;  // sorted by label values
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Returns the child of family `name` with these label values, creating
  // the family on first use. A family's type, help and label names are
  // fixed by its first registration; a later call that disagrees, or whose
  // label values do not match the label names in number, gets nullptr.
  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
  // [a-zA-Z_][a-zA-Z0-9_]* (else nullptr).
  Counter* GetCounter(std::string_view name, std::string_view help,
                      const std::vector<std::string>& label_names = {},
                      const LabelValues& label_values = {});
  Gauge* GetGauge(std::string_view name, std::string_view help,
                  const std::vector<std::string>& label_names = {},
                  const LabelValues& label_values = {});
  // `bounds` is used when the family is created; later calls reuse it.
  Histogram* GetHistogram(std::string_view name, std::string_view help,
                          const std::vector<double>& bounds,
                          const std::vector<std::string>& label_names = {},
                          const LabelValues& label_values = {});

  // A value read at exposition time, e.g. events applied or consumer lag
  // from another module. `is_counter` selects TYPE counter (monotonic) over
  // gauge. Returns false (and registers nothing) on a bad name, a clash
  // with an existing family, or a duplicate child.
  bool AddCallback(std::string_view name, std::string_view help,
                   bool is_counter, std::function<double()> read,
                   const std::vector<std::string>& label_names = {},
                   const LabelValues& label_values = {});

  // Prometheus text exposition format 0.0.4, families sorted by name.
  std::string Expose() const;

  // Every family's current values, families sorted by name; reads callback
  // metrics as Expose() does.
  std::vector<MetricFamilyValues> Collect() const;

  // Content-Type of Expose()'s output.
  static constexpr std::string_view kContentType =
      "text/plain; version=0.0.4; charset=utf-8";

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Child;
  struct Family;

  Child* GetChild(Type type, std::string_view name, std::string_view help,
                  const std::vector<std::string>& label_names,
                  const LabelValues& label_values,
                  const std::vector<double>* bounds,
                  std::function<double()> callback, bool* created);

  mutable std::shared_mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

}  // namespace cfrec::server

#endif  // CFREC_SERVER_METRICS_H_
