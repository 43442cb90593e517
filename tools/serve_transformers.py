#!/usr/bin/env python3
"""The comparison server of `make bench-serve`: transformers + PyTorch behind Python's standard HTTP
server, one request at a time, as a minimal Flask/FastAPI wrapper around `generate` would serve.

    .venv/bin/python tools/serve_transformers.py --model DIR [--port 0] [--threads 2]

POST /v1/caption with a raw image/png or image/jpeg body -> {"captions": [{"text": ...}]}, decoding
with the checkpoint's generation_config.json (as `glimpse serve` does without options). Prints
"listening on http://127.0.0.1:PORT" once the model is loaded. Offline tool only; the engine never
needs Python.
"""
import argparse, io, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer, VisionEncoderDecoderModel


def load(model_dir):
    config = json.load(open(f"{model_dir}/config.json"))
    if "VisionEncoderDecoderModel" in config.get("architectures", []):
        model = VisionEncoderDecoderModel.from_pretrained(model_dir)
    else:
        model = AutoModelForImageTextToText.from_pretrained(model_dir)
    return model.eval(), AutoImageProcessor.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, processor, tokenizer = load(args.model)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path.split("?")[0] != "/v1/caption":
                return self.reply(404, {"error": "not found"})
            try:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                image = Image.open(io.BytesIO(body)).convert("RGB")
            except Exception as error:  # a bad upload is the client's error, as glimpse serve's 422
                return self.reply(422, {"error": str(error)})
            with torch.inference_mode():
                pixel_values = processor(images=image, return_tensors="pt").pixel_values
                out = model.generate(pixel_values=pixel_values)
            self.reply(200, {"captions": [{"text": t} for t in tokenizer.batch_decode(out, skip_special_tokens=True)]})

        def reply(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_):
            pass

    server = HTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
