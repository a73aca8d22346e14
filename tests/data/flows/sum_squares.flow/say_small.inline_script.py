def main(total: int):
    return f"small: {total}"
