// The libsentencepiece side of sentencepiece_shim.h (see there for why this is a separate module).
#include "worker/tokenizers/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
int Fail(const std::string& msg, char* err, size_t errlen) {
  if (errlen > 0) {
    std::strncpy(err, msg.c_str(), errlen - 1);
    err[errlen - 1] = '\0';
  }
  return 1;
}
sentencepiece::SentencePieceProcessor* Sp(void* h) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(h);
}
}  // namespace

extern "C" {

__attribute__((visibility("default"))) int ps_spm_load(const char* path, void** handle, char* err,
                                                       size_t errlen) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  auto status = sp->Load(path);
  if (!status.ok()) {
    delete sp;
    return Fail(status.ToString(), err, errlen);
  }
  *handle = sp;
  return 0;
}

__attribute__((visibility("default"))) void ps_spm_free(void* handle) { delete Sp(handle); }

__attribute__((visibility("default"))) int ps_spm_encode(void* handle, const char* text, size_t len,
                                                         int** ids, size_t* n, char* err,
                                                         size_t errlen) {
  std::vector<int> out;
  auto status = Sp(handle)->Encode(std::string_view(text, len), &out);
  if (!status.ok()) return Fail(status.ToString(), err, errlen);
  *n = out.size();
  *ids = static_cast<int*>(std::malloc(std::max<size_t>(1, out.size()) * sizeof(int)));
  if (!*ids) return Fail("out of memory", err, errlen);
  if (!out.empty()) std::memcpy(*ids, out.data(), out.size() * sizeof(int));
  return 0;
}

__attribute__((visibility("default"))) int ps_spm_decode(void* handle, const int* ids, size_t n,
                                                         char** text, size_t* len, char* err,
                                                         size_t errlen) {
  std::string out;
  auto status = Sp(handle)->Decode(std::vector<int>(ids, ids + n), &out);
  if (!status.ok()) return Fail(status.ToString(), err, errlen);
  *len = out.size();
  *text = static_cast<char*>(std::malloc(out.size() + 1));
  if (!*text) return Fail("out of memory", err, errlen);
  std::memcpy(*text, out.data(), out.size());
  (*text)[out.size()] = '\0';
  return 0;
}

__attribute__((visibility("default"))) int ps_spm_piece_size(void* handle) {
  return Sp(handle)->GetPieceSize();
}
__attribute__((visibility("default"))) int ps_spm_bos_id(void* handle) {
  return Sp(handle)->bos_id();
}
__attribute__((visibility("default"))) int ps_spm_eos_id(void* handle) {
  return Sp(handle)->eos_id();
}
__attribute__((visibility("default"))) int ps_spm_piece_to_id(void* handle, const char* piece,
                                                              size_t len) {
  std::string_view p(piece, len);
  int id = Sp(handle)->PieceToId(p);
  if (id < 0 || id >= Sp(handle)->GetPieceSize() || Sp(handle)->IdToPiece(id) != p) return -1;
  return id;
}
__attribute__((visibility("default"))) int ps_spm_id_to_piece(void* handle, int id, char** piece,
                                                              size_t* len, char* err,
                                                              size_t errlen) {
  if (id < 0 || id >= Sp(handle)->GetPieceSize()) return Fail("id out of range", err, errlen);
  const std::string& s = Sp(handle)->IdToPiece(id);
  *len = s.size();
  *piece = static_cast<char*>(std::malloc(s.size() + 1));
  if (!*piece) return Fail("out of memory", err, errlen);
  std::memcpy(*piece, s.data(), s.size());
  (*piece)[s.size()] = '\0';
  return 0;
}
__attribute__((visibility("default"))) void ps_spm_free_buffer(void* p) { std::free(p); }
}
