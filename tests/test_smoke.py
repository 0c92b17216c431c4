import supertok


def test_hello_world():
    enc = supertok.get_encoding("gpt2")
    assert enc.encode("hello world") == [31373, 995]
    assert enc.decode([31373, 995]) == "hello world"
    enc = supertok.get_encoding("cl100k_base")
    assert enc.encode("hello <|endoftext|>", allowed_special="all") == [15339, 220, 100257]
