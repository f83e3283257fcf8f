// The job file's closed choices as enums, each with its spelling in the file (torch-free: psd,
// psctl and the worker share them). ChoiceName(e) is the spelling; ChoiceNames<E>() all of them
// in documented order; ParseChoice<E>(text) the value or nullopt.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ps {

enum class Device { kCpu, kCuda };
enum class ComputeDType { kFp32, kBf16, kFp16 };
// What ProxSparse trains: the pruning targets alone, or every parameter (targets still proxed).
enum class Trainable { kTargets, kAll };
// ProxSparse's end-of-step projection (paper Table 3 ablations): none, W ← W ⊙ topN(W), or
// W ← W0 ⊙ topN(W).
enum class HardMode { kNone, kProject, kSnap };

template <class E>
struct ChoiceTable;
template <>
struct ChoiceTable<Device> {
  static constexpr std::array<std::pair<Device, std::string_view>, 2> kEntries = {
      {{Device::kCpu, "cpu"}, {Device::kCuda, "cuda"}}};
};
template <>
struct ChoiceTable<ComputeDType> {
  static constexpr std::array<std::pair<ComputeDType, std::string_view>, 3> kEntries = {
      {{ComputeDType::kFp32, "fp32"},
       {ComputeDType::kBf16, "bf16"},
       {ComputeDType::kFp16, "fp16"}}};
};
template <>
struct ChoiceTable<Trainable> {
  static constexpr std::array<std::pair<Trainable, std::string_view>, 2> kEntries = {
      {{Trainable::kTargets, "targets"}, {Trainable::kAll, "all"}}};
};
template <>
struct ChoiceTable<HardMode> {
  static constexpr std::array<std::pair<HardMode, std::string_view>, 3> kEntries = {
      {{HardMode::kNone, "none"}, {HardMode::kProject, "project"}, {HardMode::kSnap, "snap"}}};
};

template <class E>
constexpr std::string_view ChoiceName(E value) {
  for (const auto& [v, name] : ChoiceTable<E>::kEntries)
    if (v == value) return name;
  return "?";
}

template <class E>
constexpr auto ChoiceNames() {
  std::array<std::string_view, ChoiceTable<E>::kEntries.size()> names{};
  for (size_t i = 0; i < names.size(); ++i) names[i] = ChoiceTable<E>::kEntries[i].second;
  return names;
}

template <class E>
constexpr std::optional<E> ParseChoice(std::string_view text) {
  for (const auto& [v, name] : ChoiceTable<E>::kEntries)
    if (name == text) return v;
  return std::nullopt;
}

}  // namespace ps
