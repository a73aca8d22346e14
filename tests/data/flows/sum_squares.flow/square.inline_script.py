def main(x: int):
    return x * x
