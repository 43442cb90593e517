import Foundation

/// The OpenAPI 3.1 description of every route (`GET /openapi.json`), written by hand next to the
/// routes it describes; a test checks that it parses and names every registered route.
enum OpenAPIDocument {
    static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Glimpse captioning service",
    "version": "1",
    "description": "Image captions, detections and masks from one model, batched across requests. Records follow the output contract of `glimpse caption --json`."
  },
  "paths": {
    "/v1/caption": {
      "post": {
        "operationId": "caption",
        "summary": "Caption an image (raw body) or several (multipart/form-data, field `image`).",
        "parameters": [
          {"name": "beams", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "Beam width (num_beams), at most the server's max_beams."},
          {"name": "max_tokens", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "Maximum new tokens, at most the server's max_tokens."},
          {"name": "min_tokens", "in": "query", "schema": {"type": "integer", "minimum": 0}},
          {"name": "n_best", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "Captions returned, best first."},
          {"name": "length_penalty", "in": "query", "schema": {"type": "number"}},
          {"name": "no_repeat_ngram", "in": "query", "schema": {"type": "integer", "minimum": 0}},
          {"name": "repetition_penalty", "in": "query", "schema": {"type": "number", "minimum": 1e-30}, "description": "Read as a 32-bit float, which must stay above 0."},
          {"name": "early_stopping", "in": "query", "schema": {"type": "string", "enum": ["true", "false", "never"]}},
          {"name": "prompt", "in": "query", "schema": {"type": "string"}, "description": "Text prefix the caption continues (for Florence-2 the whole task prompt)."},
          {"name": "task", "in": "query", "schema": {"type": "string"}, "description": "Florence-2 task token, e.g. <OD> (400 for models without tasks; GET /v1/models lists them)."},
          {"name": "text", "in": "query", "schema": {"type": "string"}, "description": "The task's text input (needs task)."},
          {"name": "detect", "in": "query", "schema": {"type": "boolean"}, "description": "Ground object words: boxes."},
          {"name": "segment", "in": "query", "schema": {"type": "boolean"}, "description": "Also masks (implies detect)."},
          {"name": "grounding", "in": "query", "schema": {"type": "string", "enum": ["auto", "learned", "attention"]}},
          {"name": "filename", "in": "query", "schema": {"type": "string"}, "description": "The record's `file` for a raw body (default `upload`)."}
        ],
        "requestBody": {
          "required": true,
          "content": {
            "image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}},
            "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
            "multipart/form-data": {
              "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {
                  "image": {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}},
                  "beams": {"type": "integer"}, "max_tokens": {"type": "integer"}, "min_tokens": {"type": "integer"},
                  "n_best": {"type": "integer"}, "length_penalty": {"type": "number"}, "no_repeat_ngram": {"type": "integer"},
                  "repetition_penalty": {"type": "number"}, "early_stopping": {"type": "string"}, "prompt": {"type": "string"},
                  "task": {"type": "string"}, "text": {"type": "string"},
                  "detect": {"type": "boolean"}, "segment": {"type": "boolean"}, "grounding": {"type": "string"}
                }
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "The record (raw body), or an array of records in upload order (multipart).",
            "content": {"application/json": {"schema": {"oneOf": [
              {"$ref": "#/components/schemas/Record"},
              {"type": "array", "items": {"$ref": "#/components/schemas/Record"}}
            ]}}}
          },
          "400": {"$ref": "#/components/responses/Error"},
          "413": {"$ref": "#/components/responses/Error"},
          "415": {"$ref": "#/components/responses/Error"},
          "422": {"$ref": "#/components/responses/Error"},
          "500": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Busy"},
          "504": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/v1/models": {
      "get": {
        "operationId": "models",
        "summary": "The loaded model: path, family, tasks, defaults and the server's limits.",
        "responses": {"200": {"description": "The model list (one model).", "content": {"application/json": {"schema": {
          "type": "object", "required": ["models"],
          "properties": {"models": {"type": "array", "items": {"type": "object", "required": ["path", "family", "tasks"], "properties": {
            "path": {"type": "string"}, "family": {"type": "string"}, "tasks": {"type": "array", "items": {"type": "string"}},
            "learned_heads": {"type": "boolean"}, "image_size": {"type": "integer"},
            "defaults": {"type": "object"}, "limits": {"type": "object"}}}}}}}}}}
      }
    },
    "/healthz": {
      "get": {"operationId": "healthz", "summary": "Liveness.", "responses": {"200": {"$ref": "#/components/responses/Status"}}}
    },
    "/readyz": {
      "get": {"operationId": "readyz", "summary": "Readiness: the model is loaded and the server is not shutting down.",
              "responses": {"200": {"$ref": "#/components/responses/Status"}, "503": {"$ref": "#/components/responses/Busy"}}}
    },
    "/metrics": {
      "get": {"operationId": "metrics", "summary": "Prometheus text exposition.",
              "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}
    },
    "/openapi.json": {
      "get": {"operationId": "openapi", "summary": "This document.",
              "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}}}
    }
  },
  "components": {
    "schemas": {
      "Error": {"type": "object", "required": ["error", "code"], "properties": {
        "error": {"type": "string"},
        "code": {"type": "string", "enum": ["bad_option", "not_found", "method_not_allowed", "payload_too_large", "unsupported_media_type", "undecodable_image", "captioning_failed", "overloaded", "timeout"]}}},
      "Caption": {"type": "object", "required": ["text", "score", "tokens"], "properties": {
        "text": {"type": "string"}, "score": {"type": "number"}, "tokens": {"type": "array", "items": {"type": "integer"}}}},
      "Detection": {"type": "object", "required": ["label", "word", "token_index", "box", "score"], "properties": {
        "label": {"type": "string"}, "word": {"type": "string"}, "token_index": {"type": "integer"},
        "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
        "score": {"type": "number"},
        "mask": {"type": "object", "properties": {"size": {"type": "array", "items": {"type": "integer"}}, "counts": {"type": "string"}}},
        "polygons": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}, "description": "Florence-2 segmentation: [x0, y0, x1, y1, ...] per polygon, image pixels."},
        "quad": {"type": "array", "items": {"type": "number"}, "minItems": 8, "maxItems": 8, "description": "Florence-2 OCR region: four corners."}}},
      "Record": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string"}, "width": {"type": "integer"}, "height": {"type": "integer"}, "model": {"type": "string"},
        "captions": {"type": "array", "items": {"$ref": "#/components/schemas/Caption"}},
        "detections": {"type": "array", "items": {"$ref": "#/components/schemas/Detection"}},
        "task": {"type": "string", "description": "Florence-2: the task token the record answers."},
        "answer": {"description": "Florence-2: transformers' post_process_generation(...)[task], in its own shape."},
        "timing_ms": {"type": "object", "additionalProperties": {"type": "number"}},
        "error": {"type": "string"}}}
    },
    "responses": {
      "Error": {"description": "An error.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Busy": {"description": "Queue full or shutting down; retry after the given seconds.",
               "headers": {"Retry-After": {"schema": {"type": "integer"}}},
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Status": {"description": "OK.", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}}}}}}
    }
  }
}
"""#
}
