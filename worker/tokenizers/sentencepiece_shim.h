// A C interface to libsentencepiece, built as its own shared module and dlopen()ed with
// RTLD_LOCAL | RTLD_DEEPBIND. Why: Debian's libsentencepiece bundles (and exports) a copy of
// protobuf 3.14, while LibTorch pulls in the system libprotobuf 3.21 (through ONNX). Linked into
// one executable the two copies bind to each other's symbols and the process crashes in static
// initialisation. Loaded locally with deep binding, sentencepiece keeps to its own copy.
#pragma once

#include <cstddef>

extern "C" {
// Every function returns 0 on success; on failure, non-zero with a message in err[0..errlen).
int ps_spm_load(const char* path, void** handle, char* err, size_t errlen);
void ps_spm_free(void* handle);
// *ids is malloc'ed (free with ps_spm_free_buffer).
int ps_spm_encode(void* handle, const char* text, size_t len, int** ids, size_t* n, char* err,
                  size_t errlen);
// *text is malloc'ed (free with ps_spm_free_buffer).
int ps_spm_decode(void* handle, const int* ids, size_t n, char** text, size_t* len, char* err,
                  size_t errlen);
int ps_spm_piece_size(void* handle);
int ps_spm_bos_id(void* handle);
int ps_spm_eos_id(void* handle);
// -1 when the piece is not in the vocabulary (unlike PieceToId, which answers unk's id).
int ps_spm_piece_to_id(void* handle, const char* piece, size_t len);
// *piece is malloc'ed (free with ps_spm_free_buffer); the id must be in range.
int ps_spm_id_to_piece(void* handle, int id, char** piece, size_t* len, char* err, size_t errlen);
void ps_spm_free_buffer(void* p);
}
