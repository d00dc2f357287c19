#include "cfrec/server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <mutex>
#include <utility>

namespace cfrec::server {
namespace {

bool ValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       c == '_' || (allow_colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

// Prometheus 0.0.4: label values escape backslash, double quote and newline.
void AppendEscaped(std::string& out, std::string_view v) {
  for (const char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

// HELP text escapes backslash and newline only.
void AppendHelp(std::string& out, std::string_view v) {
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void AppendValue(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    // Shortest text that reads back as the same double ("0.0025").
    char buf[32];
    const auto result = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, result.ptr);
  }
}

std::string LabelKey(const LabelValues& values) {
  // \xff never occurs in valid UTF-8, so it cannot collide with a value.
  std::string key;
  for (const auto& v : values) {
    key += v;
    key += '\xff';
  }
  return key;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::Observe(double v) {
  const size_t i =
      std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) total += bucket_count(i);
  return total;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

struct MetricsRegistry::Child {
  LabelValues label_values;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::function<double()> callback;
};

struct MetricsRegistry::Family {
  Type type = Type::kCounter;
  bool is_callback = false;
  std::string help;
  std::vector<std::string> label_names;
  std::vector<double> bounds;
  std::unordered_map<std::string, std::unique_ptr<Child>> children;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Child* MetricsRegistry::GetChild(
    Type type, std::string_view name, std::string_view help,
    const std::vector<std::string>& label_names,
    const LabelValues& label_values, const std::vector<double>* bounds,
    std::function<double()> callback, bool* created) {
  *created = false;
  if (label_names.size() != label_values.size()) return nullptr;
  const std::string key = LabelKey(label_values);
  const bool is_callback = static_cast<bool>(callback);
  {
    std::shared_lock lock(mu_);
    auto it = families_.find(name);
    if (it != families_.end()) {
      const Family& f = *it->second;
      if (f.type != type || f.is_callback != is_callback ||
          f.label_names != label_names) {
        return nullptr;
      }
      auto child = f.children.find(key);
      if (child != f.children.end()) {
        return is_callback ? nullptr : child->second.get();
      }
    }
  }
  // Slow path: validate and create under the exclusive lock.
  if (!ValidName(name, /*allow_colon=*/true)) return nullptr;
  for (const auto& l : label_names) {
    if (!ValidName(l, /*allow_colon=*/false) || l == "le") return nullptr;
  }
  if (type == Type::kHistogram &&
      (bounds == nullptr ||
       !std::is_sorted(bounds->begin(), bounds->end(),
                       [](double a, double b) { return a <= b; }))) {
    return nullptr;
  }
  std::unique_lock lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->type = type;
    family->is_callback = is_callback;
    family->help = std::string(help);
    family->label_names = label_names;
    if (bounds != nullptr) family->bounds = *bounds;
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  Family& f = *it->second;
  if (f.type != type || f.is_callback != is_callback ||
      f.label_names != label_names) {
    return nullptr;
  }
  auto [child_it, inserted] = f.children.try_emplace(key);
  if (!inserted) return is_callback ? nullptr : child_it->second.get();
  auto child = std::make_unique<Child>();
  child->label_values = label_values;
  if (is_callback) {
    child->callback = std::move(callback);
  } else if (type == Type::kCounter) {
    child->counter = std::make_unique<Counter>();
  } else if (type == Type::kGauge) {
    child->gauge = std::make_unique<Gauge>();
  } else {
    child->histogram = std::make_unique<Histogram>(f.bounds);
  }
  child_it->second = std::move(child);
  *created = true;
  return child_it->second.get();
}

Counter* MetricsRegistry::GetCounter(
    std::string_view name, std::string_view help,
    const std::vector<std::string>& label_names,
    const LabelValues& label_values) {
  bool created = false;
  Child* c = GetChild(Type::kCounter, name, help, label_names, label_values,
                      nullptr, nullptr, &created);
  return c == nullptr ? nullptr : c->counter.get();
}

Gauge* MetricsRegistry::GetGauge(std::string_view name, std::string_view help,
                                 const std::vector<std::string>& label_names,
                                 const LabelValues& label_values) {
  bool created = false;
  Child* c = GetChild(Type::kGauge, name, help, label_names, label_values,
                      nullptr, nullptr, &created);
  return c == nullptr ? nullptr : c->gauge.get();
}

Histogram* MetricsRegistry::GetHistogram(
    std::string_view name, std::string_view help,
    const std::vector<double>& bounds,
    const std::vector<std::string>& label_names,
    const LabelValues& label_values) {
  bool created = false;
  Child* c = GetChild(Type::kHistogram, name, help, label_names, label_values,
                      &bounds, nullptr, &created);
  return c == nullptr ? nullptr : c->histogram.get();
}

bool MetricsRegistry::AddCallback(std::string_view name, std::string_view help,
                                  bool is_counter, std::function<double()> read,
                                  const std::vector<std::string>& label_names,
                                  const LabelValues& label_values) {
  if (!read) return false;
  bool created = false;
  Child* c =
      GetChild(is_counter ? Type::kCounter : Type::kGauge, name, help,
               label_names, label_values, nullptr, std::move(read), &created);
  return c != nullptr && created;
}

std::string MetricsRegistry::Expose() const {
  std::string out;
  out.reserve(4096);
  std::shared_lock lock(mu_);
  for (const auto& [name, family] : families_) {
    const Family& f = *family;
    out += "# HELP ";
    out += name;
    out += ' ';
    AppendHelp(out, f.help);
    out += "\n# TYPE ";
    out += name;
    out += f.type == Type::kCounter ? " counter\n"
           : f.type == Type::kGauge ? " gauge\n"
                                    : " histogram\n";
    // Children sorted by label values so the output is stable.
    std::vector<const Child*> children;
    children.reserve(f.children.size());
    for (const auto& [key, child] : f.children) children.push_back(child.get());
    std::sort(children.begin(), children.end(),
              [](const Child* a, const Child* b) {
                return a->label_values < b->label_values;
              });
    for (const Child* child : children) {
      // `extra` is the "le" label of a histogram bucket, appended last.
      auto append_labels = [&](std::string_view extra_value) {
        if (f.label_names.empty() && extra_value.empty()) return;
        out += '{';
        bool first = true;
        for (size_t i = 0; i < f.label_names.size(); ++i) {
          if (!first) out += ',';
          first = false;
          out += f.label_names[i];
          out += "=\"";
          AppendEscaped(out, child->label_values[i]);
          out += '"';
        }
        if (!extra_value.empty()) {
          if (!first) out += ',';
          out += "le=\"";
          out += extra_value;
          out += '"';
        }
        out += '}';
      };
      if (f.type == Type::kHistogram) {
        const Histogram& h = *child->histogram;
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= h.bounds().size(); ++i) {
          cumulative += h.bucket_count(i);
          std::string le;
          if (i == h.bounds().size()) {
            le = "+Inf";
          } else {
            AppendValue(le, h.bounds()[i]);
          }
          out += name;
          out += "_bucket";
          append_labels(le);
          out += ' ';
          out += std::to_string(cumulative);
          out += '\n';
        }
        out += name;
        out += "_sum";
        append_labels({});
        out += ' ';
        AppendValue(out, h.sum());
        out += '\n';
        out += name;
        out += "_count";
        append_labels({});
        out += ' ';
        out += std::to_string(cumulative);
        out += '\n';
        continue;
      }
      out += name;
      append_labels({});
      out += ' ';
      if (child->callback) {
        AppendValue(out, child->callback());
      } else if (child->counter) {
        out += std::to_string(child->counter->value());
      } else {
        AppendValue(out, child->gauge->value());
      }
      out += '\n';
    }
  }
  return out;
}

std::vector<MetricFamilyValues> MetricsRegistry::Collect() const {
  std::vector<MetricFamilyValues> out;
  std::shared_lock lock(mu_);
  out.reserve(families_.size());
  for (const auto& [name, family] : families_) {
    const Family& f = *family;
    MetricFamilyValues& values = out.emplace_back();
    values.name = name;
    values.type = f.type == Type::kCounter ? "counter"
                  : f.type == Type::kGauge ? "gauge"
                                           : "histogram";
    values.help = f.help;
    values.label_names = f.label_names;
    values.bounds = f.bounds;
    for (const auto& [key, child] : f.children) {
      MetricFamilyValues::Sample& sample = values.samples.emplace_back();
      sample.label_values = child->label_values;
      if (child->histogram) {
        const Histogram& h = *child->histogram;
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= h.bounds().size(); ++i) {
          cumulative += h.bucket_count(i);
          sample.cumulative.push_back(cumulative);
        }
        sample.sum = h.sum();
      } else if (child->callback) {
        sample.value = child->callback();
      } else if (child->counter) {
        sample.value = static_cast<double>(child->counter->value());
      } else {
        sample.value = child->gauge->value();
      }
    }
    std::sort(values.samples.begin(), values.samples.end(),
              [](const auto& a, const auto& b) {
                return a.label_values < b.label_values;
              });
  }
  return out;
}

}  // namespace cfrec::server
