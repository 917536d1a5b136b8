#!/usr/bin/env python3
"""An independent implementation of the encrypted object format v1 (DESIGN.md), for cross-checking the
TypeScript codec's golden vectors. It shares no code with the project: Python's hashlib (scrypt, HMAC) and the
`cryptography` package (HKDF-SHA256, AES-256-GCM).

Input (stdin, JSON): {"secret": str, "saltHex": str, "dataspace": str, "segmentId": str, "chunkLog2": int,
"plaintextB64": str}. Output (stdout, JSON): the key id, the object key and the whole object (base64).
Exit status 3 with one line on stderr when the `cryptography` package is missing.
"""
import base64
import hashlib
import hmac
import json
import sys

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError:
    sys.stderr.write("the Python package 'cryptography' is missing: pip install cryptography\n")
    sys.exit(3)


def encrypt(secret: str, salt: bytes, dataspace: str, segment_id: str, chunk_log2: int, plaintext: bytes) -> dict:
    # master = scrypt(UTF-8(secret), salt = "bucket-storage/v1", N = 2^14, r = 8, p = 1, 32 bytes)
    master = hashlib.scrypt(secret.encode("utf-8"), salt=b"bucket-storage/v1", n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
    # key id = first 8 bytes of HMAC-SHA256(master, "bucket-storage key id")
    key_id = hmac.new(master, b"bucket-storage key id", hashlib.sha256).digest()[:8]
    # header: magic, version 1, algorithm 1, log2 chunk size, reserved 0, key id, salt
    header = b"BKS1" + bytes([1, 1, chunk_log2, 0]) + key_id + salt
    assert len(header) == 48
    info = b"bucket-storage/v1 segment " + dataspace.encode("utf-8") + b"/" + segment_id.encode("utf-8")
    object_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master)
    aead = AESGCM(object_key)
    size = 1 << chunk_log2
    # Every chunk but the last holds exactly `size` bytes; the last 1..size (0 only for an empty plaintext).
    pieces = [plaintext[i : i + size] for i in range(0, len(plaintext), size)] or [b""]
    out = [header]
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        nonce = bytes(7) + i.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        out.append(aead.encrypt(nonce, piece, header))  # ciphertext || 16-byte tag, header as associated data
    return {
        "keyIdHex": key_id.hex(),
        "objectKeyHex": object_key.hex(),
        "chunks": len(pieces),
        "objectB64": base64.b64encode(b"".join(out)).decode("ascii"),
    }


def main() -> None:
    args = json.load(sys.stdin)
    result = encrypt(
        args["secret"],
        bytes.fromhex(args["saltHex"]),
        args["dataspace"],
        args["segmentId"],
        int(args["chunkLog2"]),
        base64.b64decode(args["plaintextB64"]),
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
