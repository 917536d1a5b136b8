/**
 * Encrypted object format v1, specified in docs/FORMAT.md: a 48-byte plaintext header, then chunks of
 * AES-256-GCM (the STREAM construction). The writer and the reader mirror each other and both hold at most
 * two chunks in memory, whatever the object's size. A chunk's plaintext is pushed downstream only after its
 * tag verified, so a failing stream never releases unauthenticated bytes.
 *
 *   header  magic "BKS1" | version 1 | algorithm 1 | chunk log2 | 0 | key id (8) | salt (32)     header.ts
 *   chunk i AES-256-GCM(objectKey, nonce_i, plaintext_i, aad = header) = ciphertext_i || tag_i    chunkCipher.ts
 *   nonce_i 7 zero bytes | uint32 BE i | 1 for the last chunk else 0
 *   objectKey = HKDF-SHA256(master, salt, "bucket-storage/v1 segment " + dataspace + "/" + segmentId)
 *   sizes and byte ranges                                                                         layout.ts
 *   writer: encryptStream.ts (a stream), sealedBytes.ts (pulled into the caller's buffers, known size;
 *           sealInParallel: chunks sealed on worker threads, gcmThreads.ts)
 *   reader: decryptStream.ts (a stream, a Decryptor; openInParallel: chunks opened on worker threads), chunkReader.ts
 */
export { HEADER_SIZE, MIN_CHUNK_LOG2, MAX_CHUNK_LOG2, DEFAULT_CHUNK_LOG2, isChunkLog2, parseHeader, type Header } from './header.ts';
export { objectSubkey, TAG_SIZE } from './chunkCipher.ts';
export { checkRange, chunkCount, ciphertextSize, planRange, type RangePlan } from './layout.ts';
export { createEncryptStream, EncryptStream, type EncryptOptions } from './encryptStream.ts';
export { SealedBytes, sealInParallel, type SealOptions } from './sealedBytes.ts';
export { defaultThreads, GcmThreads } from './gcmThreads.ts';
export { createDecryptStream, Decryptor, DecryptStream, openInParallel, type DecryptOptions } from './decryptStream.ts';
