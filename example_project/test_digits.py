"""The model's budgets, one test per shipped variant (budgets/digits_cnn.toml)."""

import pytest


# The float variants are checked on size alone, without eval_data: the budget's file-wide
# [regression] accuracy and fidelity are a skip here, with the reason, and judged on the others.
@pytest.mark.tflite_budget("digits_cnn")
def test_digits_float32(tflite_convert, tflite_budget, trained_cnn):
    tflite_budget.check(tflite_convert(trained_cnn, recipe="float32"))


@pytest.mark.tflite_budget("digits_cnn")
def test_digits_float16(tflite_convert, tflite_budget, trained_cnn):
    tflite_budget.check(tflite_convert(trained_cnn, recipe="float16"))


@pytest.mark.tflite_budget("digits_cnn")
def test_digits_int8(tflite_convert, tflite_budget, trained_cnn, digits):
    model = tflite_convert(trained_cnn, recipe="int8", representative_data=digits.x_train[:256])
    tflite_budget.check(model, eval_data=(digits.x_test, digits.y_test), reference=trained_cnn)


@pytest.mark.tflite_budget("digits_cnn")
def test_digits_pruned_int8(tflite_prune, tflite_convert, tflite_budget, trained_cnn_tf_keras,
                            digits):
    pruned = tflite_prune(trained_cnn_tf_keras, 0.75, fine_tune=(digits.x_train, digits.y_train),
                          epochs=5)
    model = tflite_convert(pruned, "int8", representative_data=digits.x_train[:256],
                           variant="pruned_int8")
    tflite_budget.check(model, eval_data=(digits.x_test, digits.y_test),
                        reference=trained_cnn_tf_keras)


@pytest.mark.tflite_budget("digits_cnn")
def test_digits_int4(tflite_convert, tflite_budget, trained_cnn, digits):
    # The LiteRT quantizer's int4 weight-only recipe (the quantizer extra): smaller than int8,
    # float activations, a little less faithful.
    model = tflite_convert(trained_cnn, recipe="lq_wi4", variant="int4")
    tflite_budget.check(model, eval_data=(digits.x_test, digits.y_test), reference=trained_cnn)
