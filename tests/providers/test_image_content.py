"""Image input on the wire, one shape per protocol (as in each provider's API reference):
OpenAI `image_url` data URLs, Anthropic `image` blocks with a base64 source, Gemini
`inlineData`. The request's repr never shows the bytes."""

from __future__ import annotations

import base64

from providers.registry import build_adapter
from schemas.completion import CompletionRequest, ImageInput
from schemas.config import ModelConfig, ProviderConfig

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake pixels").decode()
REQUEST = CompletionRequest(
    system="Extract.",
    prompt="Invoice photo",
    images=[ImageInput(media_type="image/png", data_b64=PNG, label="a.png (sha256 0123)")],
)


def body_for(kind: str) -> dict:
    provider = ProviderConfig(name=kind, kind=kind, base_url="http://127.0.0.1:9/v1")
    model = ModelConfig(name="m", provider=kind, model="m-1", capabilities=["vision"])
    return build_adapter(provider).build_call(model, REQUEST).body


def test_openai_sends_a_data_url_image_part_before_the_text() -> None:
    user = body_for("openai")["messages"][-1]
    assert user["role"] == "user"
    assert user["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "Invoice photo"},
    ]


def test_anthropic_sends_an_image_block_with_a_base64_source() -> None:
    [user] = body_for("anthropic")["messages"]
    assert user["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "Invoice photo"},
    ]


def test_gemini_sends_inline_data() -> None:
    [content] = body_for("gemini")["contents"]
    assert content["parts"] == [
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"text": "Invoice photo"},
    ]


def test_without_images_the_prompt_stays_a_plain_string() -> None:
    plain = REQUEST.model_copy(update={"images": []})
    provider = ProviderConfig(name="o", kind="openai", base_url="http://127.0.0.1:9/v1")
    body = build_adapter(provider).build_call(ModelConfig(name="m", provider="o", model="m"), plain)
    assert body.body["messages"][-1]["content"] == "Invoice photo"


def test_image_bytes_never_show_in_a_repr() -> None:
    assert PNG not in repr(REQUEST) and PNG not in str(REQUEST.images[0])


def test_image_token_rules_follow_each_providers_published_formula() -> None:
    from providers.image_tokens import image_tokens, worst_case_image_tokens

    assert image_tokens("openai", 1024, 1024) == 85 + 170 * 4  # 768 x 768: four 512 tiles
    assert image_tokens("openai", 512, 512) == 85 + 170
    assert image_tokens("anthropic", 1000, 1000) == 1334  # ceil(1e6 / 750)
    assert image_tokens("gemini", 300, 300) == 258
    assert image_tokens("gemini", 1000, 1000) == 258 * 4  # 768 px tiles
    assert worst_case_image_tokens(1000, 1000) == 1334
