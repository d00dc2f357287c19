#include <unistd.h>

#include <cstdio>
#include <string>

#include "cfrec/ingest/kafka.h"
#include "cfrec/ingest/replay.h"
#include "cfrec/schemas/log.h"
#include "cfrec/schemas/mind.h"
#include "commands.h"

namespace cfrec::app {
namespace {

struct ReplayArgs {
  std::string file;
  std::string kafka;
  std::string topic = std::string(ingest::kDefaultTopic);
  double speed = 0;
  double click_delay_s = 0;
};

int RunReplay(const ReplayArgs& args) {
  auto file = ReadMindFile(args.file);
  if (!file.ok()) {
    std::fprintf(stderr, "cfrec replay: %s\n",
                 file.status().ToString().c_str());
    return 2;
  }
  for (size_t i = 0; i < file->errors.size() && i < 10; ++i) {
    LogWarn("replay", "skipped " + file->errors[i]);
  }
  SortMindRowsByTime(&file->rows);
  ingest::ProducerOptions po;
  po.brokers = args.kafka;
  po.topic = args.topic;
  auto producer = ingest::KafkaProducer::Create(po);
  if (!producer.ok()) {
    std::fprintf(stderr, "cfrec replay: %s\n",
                 producer.status().ToString().c_str());
    return 1;
  }
  ingest::ReplayOptions ro;
  ro.speed = args.speed;
  ro.click_delay_ms = static_cast<int64_t>(args.click_delay_s * 1000);
  ro.progress_bar = isatty(STDERR_FILENO) != 0;
  auto summary = ingest::Replay(file->rows, producer->get(), ro);
  if (!summary.ok()) {
    std::fprintf(stderr, "cfrec replay: %s\n",
                 summary.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "{\"rows\":%llu,\"bad_rows\":%zu,\"impressions\":%llu,\"clicks\":%llu,"
      "\"seconds\":%.3f,\"delivery_failures\":%llu,\"topic\":\"%s\"}\n",
      static_cast<unsigned long long>(summary->rows), file->errors.size(),
      static_cast<unsigned long long>(summary->impressions),
      static_cast<unsigned long long>(summary->clicks), summary->seconds,
      static_cast<unsigned long long>((*producer)->delivery_failures()),
      args.topic.c_str());
  return (*producer)->delivery_failures() == 0 ? 0 : 1;
}

}  // namespace

void AddReplayCommand(CLI::App& app, ExitCode* exit_code) {
  auto args = std::make_shared<ReplayArgs>();
  auto* cmd = app.add_subcommand(
      "replay",
      "Replay a MIND-format behaviors.tsv into Kafka as impression and click "
      "events, in time order. Prints a JSON summary line.");
  cmd->add_option("file", args->file, "MIND-format behaviors.tsv")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--kafka", args->kafka,
                  "Bootstrap servers, e.g. 127.0.0.1:9092 (the address "
                  "`cfrec serve` logs for its embedded broker)")
      ->required();
  cmd->add_option("--topic", args->topic, "Topic")->capture_default_str();
  cmd->add_option("--speed", args->speed,
                  "Event-time speed-up: 60 = 60x real time; 0 = as fast as "
                  "possible")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--click-delay", args->click_delay_s,
                  "Seconds of event time between an impression and its "
                  "clicks")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->callback([args, exit_code] { exit_code->value = RunReplay(*args); });
}

}  // namespace cfrec::app
