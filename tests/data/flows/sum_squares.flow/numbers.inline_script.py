def main(n: int):
    return list(range(1, n + 1))
