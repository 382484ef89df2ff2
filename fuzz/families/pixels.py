"""Pixel data and multi-instance attacks: corrupt codestreams inside valid encapsulation,
native pixel data that disagrees with the header, enhanced multi-frame objects whose
functional groups are missing or shuffled, and series that are not one volume."""

from __future__ import annotations

import struct

from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from .. import part10
from ..cases import Request
from ..envelopes import dicom_request, predict_target
from . import family
from ._dicom import encode, set_raw, set_text


def _encapsulated(frames: list[bytes], with_offsets: bool) -> bytes:
    """PS3.5 A.4 encapsulation, one fragment per frame (empty and odd fragments allowed, which
    pydicom's encapsulate refuses): Basic Offset Table item, fragment items; the writer adds
    the undefined length and the Sequence Delimitation Item."""
    items = [struct.pack("<HHI", 0xFFFE, 0xE000, len(f) + len(f) % 2) + f + b"\0" * (len(f) % 2) for f in frames]
    offsets, position = [], 0
    for item in items:
        offsets.append(position)
        position += len(item)
    table = struct.pack(f"<{len(offsets)}I", *offsets) if with_offsets else b""
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(table)) + table + b"".join(items)


def _corrupt(rng, frame: bytes, codec: str) -> tuple[bytes, str]:
    """One frame's codestream damaged in a way its decoder must survive."""
    kind = rng.choice(("flip", "truncate", "zero_header", "garbage", "empty", "codec_header"))
    if kind == "flip":
        out = bytearray(frame)
        for _ in range(rng.randint(1, 32)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out), kind
    if kind == "truncate":
        return frame[: rng.randrange(max(1, len(frame)))], kind
    if kind == "zero_header":
        return bytes(min(len(frame), 64)) + frame[64:], kind
    if kind == "garbage":
        return rng.randbytes(rng.choice((2, 64, 4096))), kind
    if kind == "empty":
        return b"", kind
    if codec == "rle":  # RLE header: segment count + 15 offsets (PS3.5 G.3.1)
        count = rng.choice((0, 15, 16, 0xFFFFFFFF))
        offsets = [rng.choice((64, len(frame) + 1000, 0xFFFFFFF0, 0)) for _ in range(15)]
        return struct.pack("<16I", count, *offsets) + frame[64:], "rle_header"
    markers = {"jpeg": b"\xff\xd8\xff\xc0", "jpeg2000": b"\xff\x4f\xff\x51", "jpegls": b"\xff\xd8\xff\xf7"}
    header = markers[codec] + struct.pack(">HH", 0xFFFF, rng.choice((0, 1, 0xFFFF)))
    return header + frame[len(header) :], "codec_header"


@family
def fragment_corruption(rng, corpus):
    """An encapsulated frame (JPEG, JPEG 2000, JPEG-LS or RLE) damaged, re-encapsulated
    correctly, so only the decoder can notice."""
    codec = rng.choice(sorted(corpus.encapsulated))
    name = rng.choice(corpus.encapsulated[codec])
    ds = corpus.dataset(name)
    frames_count = int(getattr(ds, "NumberOfFrames", 1) or 1)
    frames = list(generate_frames(ds.PixelData, number_of_frames=frames_count))
    index = rng.randrange(len(frames))
    frames[index], kind = _corrupt(rng, frames[index], codec)
    set_raw(ds, "PixelData", _encapsulated(frames, with_offsets=rng.random() < 0.5), "OB")
    return dicom_request(rng, [encode(ds)], f"{name} frame {index} {kind}")


@family
def pixel_data_size(rng, corpus):
    """Native (7FE0,0010) shorter, longer, empty or absent compared with Rows x Columns x
    SamplesPerPixel x BitsAllocated x NumberOfFrames (rewritten in the bytes, with a
    correct length field, since pydicom refuses to write most of these)."""
    name = rng.choice([n for n in corpus.native if n != "MR_small_bigendian.dcm"])
    data = corpus.bytes(name)
    element = next(e for e in part10.elements(data) if e.tag == (0x7FE0, 0x0010))
    pixels = data[element.value_offset : element.end]
    kind = rng.choice(("short", "long", "empty", "odd", "absent", "one_byte"))
    value = {
        "short": lambda: pixels[: len(pixels) // rng.choice((2, 3, 100))],
        "long": lambda: pixels + pixels[: rng.choice((2, len(pixels)))],
        "empty": lambda: b"",
        "odd": lambda: pixels[:-1],
        "one_byte": lambda: b"\x00",
        "absent": lambda: None,
    }[kind]()
    head = data[: element.offset]
    if value is None:
        mutated = head + data[element.end :]
    else:
        header = data[element.offset : element.length_offset] + struct.pack("<I" if element.length_size == 4 else "<H", len(value))
        mutated = head + header + value + data[element.end :]
    return dicom_request(rng, [mutated], f"{name} pixel data {kind}")


@family
def enhanced_groups(rng, corpus):
    """Enhanced multi-frame objects (emri_small, eCT_Supplemental, nibabel's Philips MPRAGE)
    with per-frame functional groups removed, truncated, shuffled or duplicated, shared
    groups removed, or NumberOfFrames disagreeing, asked for every output format."""
    name = rng.choice(corpus.enhanced)
    ds = corpus.dataset(name)
    kind = rng.choice(("intact", "drop_per_frame", "drop_item", "shuffle", "duplicate_item", "drop_shared", "drop_position", "frames_mismatch"))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if kind == "drop_per_frame" and per_frame is not None:
        del ds.PerFrameFunctionalGroupsSequence
    elif kind == "drop_item" and per_frame:
        del per_frame[rng.randrange(len(per_frame))]
    elif kind == "shuffle" and per_frame:
        items = list(per_frame)
        rng.shuffle(items)
        ds.PerFrameFunctionalGroupsSequence = items
    elif kind == "duplicate_item" and per_frame:
        per_frame.append(per_frame[0])
    elif kind == "drop_shared" and "SharedFunctionalGroupsSequence" in ds:
        del ds.SharedFunctionalGroupsSequence
    elif kind == "drop_position" and per_frame:
        for item in per_frame:
            if "PlanePositionSequence" in item:
                del item.PlanePositionSequence
    elif kind == "frames_mismatch":
        set_text(ds, "NumberOfFrames", str(rng.choice((1, int(ds.NumberOfFrames) + 1, 1000000))))
    output = rng.choice(("json", "seg", "seg", "nifti", "png", "rle"))
    model = rng.choice(("ct_nodule_classifier", "ct_nodule_segmenter", "ct_nodule_segmenter_3d", "ct_nodule_classifier_cam"))
    return Request("POST", predict_target(model, output), encode(ds), ((b"Content-Type", b"application/dicom"),), f"{name} {kind}")


@family
def series_abuse(rng, corpus):
    """Several instances that are not one volume: mixed series, duplicate SOP Instance UIDs,
    mixed sizes, hundreds of copies of one slice, CT and MR together."""
    kind = rng.choice(("duplicates", "mixed_sizes", "mixed_modality", "many_copies", "same_position", "two_series"))
    base = corpus.dataset("CT_small.dcm")
    if kind == "duplicates":
        instances = [corpus.bytes("CT_small.dcm")] * rng.randint(2, 5)
    elif kind == "mixed_sizes":
        instances = [corpus.bytes("CT_small.dcm"), corpus.bytes("693_UNCI.dcm"), corpus.bytes("pynetdicom:CTImageStorage.dcm")]
    elif kind == "mixed_modality":
        instances = [corpus.bytes("CT_small.dcm"), corpus.bytes("MR_small.dcm")]
    elif kind == "many_copies":  # one encoding, fixed-width UID and position patched per copy
        base.SOPInstanceUID = "1.2.826.0.1.3680043.10.543.100000"
        set_text(base, "ImagePositionPatient", "0\\0\\000000")
        template = encode(base)
        instances = [
            template.replace(b"543.100000", b"543.%06d" % (100001 + k)).replace(b"0\\0\\000000", b"0\\0\\%06d" % k)
            for k in range(rng.choice((20, 150, 2100)))
        ]
    elif kind == "same_position":
        instances = []
        for k in range(3):
            base.SOPInstanceUID = generate_uid(entropy_srcs=[str(k)])
            instances.append(encode(base))
    else:
        instances = []
        for k in range(4):
            base.SOPInstanceUID = generate_uid(entropy_srcs=[str(k)])
            base.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series{k % 2}"])
            set_text(base, "ImagePositionPatient", f"0\\0\\{k}")
            instances.append(encode(base))
    return dicom_request(rng, instances, f"{len(instances)} instances {kind}")
