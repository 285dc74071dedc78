"""Uploaded files of the demo: raw or multipart/form-data bodies, and a
download-safe name from the user's file name."""
import os.path as osp
import re
from email import policy
from email.parser import BytesParser
from typing import Tuple
from urllib.parse import unquote

from fastapi import Request
from starlette.exceptions import HTTPException

__all__ = ['extract_upload', 'safe_stem']

_NAME_RE = re.compile(r'[^A-Za-z0-9._-]+')


def safe_stem(filename: str) -> str:
    """A download-safe stem from a user-supplied file name."""
    stem = osp.splitext(osp.basename(filename.replace('\\', '/')))[0]
    stem = _NAME_RE.sub('_', stem).strip('._')[:64]
    return stem or 'image'


def extract_upload(request: Request, body: bytes) -> Tuple[bytes, str]:
    """File bytes and name from a raw or multipart/form-data body."""
    content_type = request.headers.get('content-type', '')
    filename = unquote(request.headers.get('x-filename', 'image'))
    if not content_type.lower().startswith('multipart/form-data'):
        return body, filename
    head = f'Content-Type: {content_type}\r\n\r\n'.encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise HTTPException(400, 'malformed multipart upload')
    for part in message.iter_parts():
        if part.get_filename() is not None or \
                part.get_param('name', header='content-disposition') \
                in ('image', 'file'):
            return (part.get_payload(decode=True) or b'',
                    part.get_filename() or filename)
    raise HTTPException(400, 'the multipart upload has no file field '
                        '(send the image as field "image")')
