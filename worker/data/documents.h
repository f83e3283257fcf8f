// Text documents for calibration and evaluation: JSON lines ({"text": ...} per line, optionally
// gzip'd: the C4 layout), or plain text files. Format by file name: *.jsonl, *.json, *.ndjson (each
// optionally followed by .gz) are JSON lines; anything else is text. Gzip itself is detected from
// the file's magic bytes, so a gzip'd text file works too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ps {

enum class TextSplit {
  kWholeFile,   // the file is one document (evaluation text: code-eval.txt, wikitext test.txt)
  kBlankLines,  // documents separated by one or more empty lines
};

struct DocumentReadOptions {
  std::string text_key = "text";  // JSON lines: the field that holds the document
  TextSplit text_split = TextSplit::kWholeFile;
  size_t max_documents = 0;  // 0 = all; else stop after this many
};

// True when the name says JSON lines (see above).
bool IsJsonLinesPath(const std::filesystem::path& path);

// JSON lines: one document per non-empty line, the string under `text_key`. Throws ps::Error
// naming the file and 1-based line for a line that is not a JSON object, lacks the key, or whose
// value is not a string; for missing files; for corrupt gzip.
std::vector<std::string> ReadJsonLines(const std::filesystem::path& path,
                                       const DocumentReadOptions& options = {});

// A text file (gzip'd or not) as bytes, unchanged.
std::string ReadTextFile(const std::filesystem::path& path);

// Dispatches on the file name (IsJsonLinesPath) and applies `text_split` to text files. Empty
// documents are kept for JSON lines (the caller decides) and dropped for kBlankLines.
std::vector<std::string> ReadDocuments(const std::filesystem::path& path,
                                       const DocumentReadOptions& options = {});

// What a report records about a data file.
struct DataFileInfo {
  std::filesystem::path path;
  uint64_t bytes = 0;
  std::string sha256;  // lower-case hex of the file as stored (compressed bytes for .gz)
};
DataFileInfo DescribeDataFile(const std::filesystem::path& path);

}  // namespace ps
